// data_cmds.cpp: `tnl data prepare` (text into train/validation token shards, see
// src/train/token_data.h) and `tnl data brown-text` (the Brown corpus as plain text, e.g. to train
// the tokenizer on).
//
// prepare: documents come from text files (split by --documents) or Brown files (one document
// each); a seeded shuffle of the document indices picks round(val_fraction · documents) of them
// for validation (at least one when there are two or more); each split keeps the input order.
// A document is tokenized line by line (as the tokenizer was trained), optionally followed by
// EOS; the tokens fill DIR/train-NNNNN.tok and DIR/val-NNNNN.tok shards of at most
// --shard-tokens each. DIR/meta.json records counts, vocabulary, tokenizer and sources.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "args.h"
#include "model/io/atomic_file.h"
#include "model/tokenizer.h"
#include "progress.h"
#include "tnl/error.h"
#include "train/text_corpus.h"
#include "train/token_data.h"

namespace tnl::cli {
namespace {

std::string required_flag(const Args& a, const char* flag) {
  if (!a.has(flag)) throw ArgumentError(detail::cat("flag '--", flag, "': required"));
  return a.str(flag, "");
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ArgumentError(detail::cat("cannot open '", path, "'"));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string x; std::getline(in, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

// Regular, non-hidden files of a directory, in name order.
std::vector<std::string> list_text_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw ArgumentError(detail::cat("flag '--input': cannot open directory '", dir, "'"));
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.empty() || n[0] == '.') continue;
    struct stat st {};
    if (::stat((dir + "/" + n).c_str(), &st) == 0 && S_ISREG(st.st_mode)) names.push_back(dir + "/" + n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  if (names.empty()) throw ArgumentError(detail::cat("flag '--input': no files in directory '", dir, "'"));
  return names;
}

// The input files: each --input item is a file or a directory (its Brown files, or all files).
std::vector<std::string> input_files(const std::string& inputs, bool brown) {
  std::vector<std::string> files;
  for (const std::string& item : split_commas(inputs)) {
    if (is_dir(item)) {
      const std::vector<std::string> f = brown ? train::list_brown_files(item) : list_text_files(item);
      files.insert(files.end(), f.begin(), f.end());
    } else {
      std::ifstream test(item);
      if (!test) throw ArgumentError(detail::cat("flag '--input': cannot open '", item, "'"));
      files.push_back(item);
    }
  }
  if (files.empty()) throw ArgumentError("flag '--input': no input files");
  return files;
}

std::vector<std::string> documents_of(const std::string& path, bool brown, train::DocSplit split) {
  const std::string text = slurp(path);
  if (brown) {
    const std::string plain = train::brown_to_text(text);
    if (plain.empty()) return {};
    return {plain.substr(0, plain.size() - 1)};  // without the last '\n'
  }
  return train::split_documents(text, split);
}

std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if ((unsigned char)c < 0x20) {
      char u[8];
      std::snprintf(u, sizeof u, "\\u%04x", (unsigned)c);
      o += u;
    } else o += c;
  }
  return o + "\"";
}

std::string json_string_list(const std::vector<std::string>& v) {
  std::string o = "[";
  for (size_t i = 0; i < v.size(); ++i) o += (i ? ", " : "") + json_string(v[i]);
  return o + "]";
}

// Accumulates one split's tokens and writes DIR/<split>-NNNNN.tok shards.
class ShardWriter {
 public:
  ShardWriter(std::string dir, std::string split, int64_t shard_tokens, int64_t vocab)
      : dir_(std::move(dir)), split_(std::move(split)), shard_tokens_(shard_tokens), vocab_(vocab) {}
  void add(const std::vector<int32_t>& t) {
    for (int32_t x : t) {
      buf_.push_back(x);
      if ((int64_t)buf_.size() == shard_tokens_) flush();
    }
    total_ += (int64_t)t.size();
  }
  void finish() {
    if (!buf_.empty() || names_.empty()) flush();
  }
  int64_t total() const { return total_; }
  const std::vector<std::string>& names() const { return names_; }

 private:
  void flush() {
    char name[64];
    std::snprintf(name, sizeof name, "%s-%05zu.tok", split_.c_str(), names_.size());
    train::write_token_shard(dir_ + "/" + name, buf_, vocab_);
    names_.push_back(name);
    buf_.clear();
  }
  std::string dir_, split_;
  int64_t shard_tokens_, vocab_, total_ = 0;
  std::vector<int32_t> buf_;
  std::vector<std::string> names_;
};

// Removes shards of an earlier run that this one did not write (their numbers run higher).
void remove_stale_shards(const std::string& dir, const std::vector<std::string>& keep) {
  for (const char* split : {"train", "val"}) {
    std::vector<std::string> old;
    try {
      old = train::list_shards(dir, split);
    } catch (const ArgumentError&) {
      continue;
    }
    for (const std::string& p : old) {
      const std::string name = p.substr(dir.size() + 1);
      if (std::find(keep.begin(), keep.end(), name) == keep.end()) std::remove(p.c_str());
    }
  }
}

void make_dirs(const std::string& dir) {
  std::string cur;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!cur.empty() && !is_dir(cur) && ::mkdir(cur.c_str(), 0755) != 0 && !is_dir(cur))
        throw ArgumentError(detail::cat("flag '--output': cannot create directory '", cur, "'"));
    }
    if (i < dir.size()) cur += dir[i];
  }
}

}  // namespace

int data_prepare(int argc, char** argv) {
  const Args a(argc, argv,
               {"input", "tokenizer", "output", "val-fraction", "format", "seed", "documents", "shard-tokens"},
               {"append-eos"});
  const std::string inputs = required_flag(a, "input"), tok_path = required_flag(a, "tokenizer"),
                    out = required_flag(a, "output");
  const double val_fraction = a.real("val-fraction", 0.05);
  if (!(val_fraction >= 0 && val_fraction < 1))
    throw ArgumentError(detail::cat("flag '--val-fraction': expected a value in [0, 1), got ", val_fraction));
  const std::string format = a.str("format", "text");
  if (format != "text" && format != "brown")
    throw ArgumentError(detail::cat("flag '--format': expected text or brown, got '", format, "'"));
  const bool brown = format == "brown";
  const train::DocSplit split = train::parse_doc_split(a.str("documents", "paragraphs"));
  if (brown && a.has("documents")) throw ArgumentError("flag '--documents': Brown files are one document each");
  const uint64_t seed = (uint64_t)a.integer("seed", 1234);
  const int64_t shard_tokens = a.integer("shard-tokens", 100000000);
  if (shard_tokens < 1) throw ArgumentError("flag '--shard-tokens': expected >= 1");
  const bool append_eos = a.flag("append-eos");

  const model::Tokenizer tok(tok_path);
  const int64_t vocab = tok.vocab_size();
  const std::vector<std::string> files = input_files(inputs, brown);

  // Pass 1: count the documents (and bytes, for the progress bar), then choose the validation ones.
  std::vector<int64_t> docs_per_file;
  int64_t num_docs = 0;
  double total_bytes = 0;
  for (const std::string& f : files) {
    const std::vector<std::string> d = documents_of(f, brown, split);
    docs_per_file.push_back((int64_t)d.size());
    num_docs += (int64_t)d.size();
    for (const std::string& s : d) total_bytes += (double)s.size();
  }
  if (num_docs == 0) throw ArgumentError(detail::cat("flag '--input': no text in '", inputs, "'"));
  int64_t num_val = (int64_t)std::llround(val_fraction * (double)num_docs);
  if (val_fraction > 0 && num_docs >= 2) num_val = std::min(std::max<int64_t>(num_val, 1), num_docs - 1);
  if (num_docs < 2) num_val = 0;
  std::vector<char> is_val(num_docs, 0);
  const std::vector<int64_t> order = train::shuffled_order(num_docs, seed, 0);
  for (int64_t i = 0; i < num_val; ++i) is_val[order[i]] = 1;

  // Pass 2: tokenize (files of a group in parallel) and write in input order.
  make_dirs(out);
  ShardWriter train_w(out, "train", shard_tokens, vocab), val_w(out, "val", shard_tokens, vocab);
  cli::Progress bar(total_bytes, "B");
  double done_bytes = 0;
  int64_t doc_index = 0;
  constexpr int64_t kGroup = 32;  // files tokenized at once
  for (int64_t g0 = 0; g0 < (int64_t)files.size(); g0 += kGroup) {
    const int64_t g1 = std::min<int64_t>(g0 + kGroup, (int64_t)files.size());
    std::vector<std::vector<std::vector<int32_t>>> ids(g1 - g0);  // (file, document, tokens)
    std::vector<std::vector<size_t>> bytes(g1 - g0);
    std::vector<std::string> errors(g1 - g0);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t fi = g0; fi < g1; ++fi) {
      try {
        const std::vector<std::string> docs = documents_of(files[fi], brown, split);
        if ((int64_t)docs.size() != docs_per_file[fi])
          throw Error(detail::cat("'", files[fi], "' changed while being read"));
        for (const std::string& d : docs) {
          std::vector<int32_t> t;
          std::istringstream lines(d);
          for (std::string line; std::getline(lines, line);) {
            const std::vector<int32_t> l = tok.encode(line);
            t.insert(t.end(), l.begin(), l.end());
          }
          if (append_eos) t.push_back(tok.eos_id());
          ids[fi - g0].push_back(std::move(t));
          bytes[fi - g0].push_back(d.size());
        }
      } catch (const std::exception& e) {
        errors[fi - g0] = e.what();
      }
    }
    for (int64_t k = 0; k < g1 - g0; ++k) {
      if (!errors[k].empty()) throw Error(errors[k]);
      for (size_t d = 0; d < ids[k].size(); ++d) {
        (is_val[doc_index++] ? val_w : train_w).add(ids[k][d]);
        done_bytes += (double)bytes[k][d];
      }
    }
    bar.update(done_bytes);
  }
  train_w.finish();
  if (num_val > 0) val_w.finish();
  bar.finish(done_bytes);
  std::vector<std::string> written = train_w.names();
  written.insert(written.end(), val_w.names().begin(), val_w.names().end());
  remove_stale_shards(out, written);

  std::ostringstream meta;
  meta << "{\n"
       << "  \"format\": \"tnl-token-shards\",\n  \"version\": 1,\n"
       << "  \"vocab_size\": " << vocab << ",\n"
       << "  \"tokenizer\": " << json_string(tok_path) << ",\n"
       << "  \"source\": " << json_string_list(split_commas(inputs)) << ",\n"
       << "  \"input_format\": " << json_string(format) << ",\n"
       << "  \"documents_split_by\": " << json_string(brown ? "files" : a.str("documents", "paragraphs")) << ",\n"
       << "  \"seed\": " << seed << ",\n  \"val_fraction\": " << val_fraction << ",\n"
       << "  \"append_eos\": " << (append_eos ? "true" : "false") << ",\n"
       << "  \"documents\": {\"train\": " << num_docs - num_val << ", \"val\": " << num_val << "},\n"
       << "  \"tokens\": {\"train\": " << train_w.total() << ", \"val\": " << val_w.total() << "},\n"
       << "  \"shards\": {\"train\": " << json_string_list(train_w.names())
       << ", \"val\": " << json_string_list(val_w.names()) << "}\n}\n";
  io::write_text_atomically(out + "/meta.json", meta.str());
  std::printf("prepared %s: %lld train tokens (%lld documents, %zu shards), %lld val tokens (%lld documents); "
              "vocab %lld, %.2f bytes/token\n",
              out.c_str(), (long long)train_w.total(), (long long)(num_docs - num_val), train_w.names().size(),
              (long long)val_w.total(), (long long)num_val, (long long)vocab,
              total_bytes / std::max<double>(1.0, (double)(train_w.total() + val_w.total())));
  return 0;
}

int data_brown_text(int argc, char** argv) {
  const Args a(argc, argv, {"input", "output"}, {});
  const std::vector<std::string> files = input_files(required_flag(a, "input"), true);
  const std::string out = required_flag(a, "output");
  std::string text;
  int64_t docs = 0, lines = 0;
  for (const std::string& f : files) {
    const std::string doc = train::brown_to_text(slurp(f));
    if (doc.empty()) continue;
    if (docs++ > 0) text += '\n';  // a blank line between documents
    text += doc;
    lines += (int64_t)std::count(doc.begin(), doc.end(), '\n');
  }
  io::write_text_atomically(out, text);
  std::printf("wrote %s: %lld documents, %lld sentences, %.1f MB (one sentence per line, a blank line "
              "between documents)\n",
              out.c_str(), (long long)docs, (long long)lines, (double)text.size() / 1e6);
  return 0;
}

}  // namespace tnl::cli
