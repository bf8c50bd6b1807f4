// tokenizer.h: SentencePiece tokenizer (tokenizer.model, BPE with byte fallback), through the
// SentencePiece library. Released ids: unk = pad = 0, bos = 1, eos = 2; nothing added by default.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace tnl::model {

class Tokenizer {
 public:
  explicit Tokenizer(const std::string& model_path);  // throws tnl::Error naming the file
  ~Tokenizer();

  std::vector<int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  int64_t vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
};

// Streams decoded text as tokens arrive: feed ids one by one, get the new text (UTF-8 complete).
class DetokenizeStream {
 public:
  // `context`: the ids before the first pushed one (the prompt). The text they render is not
  // emitted, but it decides how the first new token renders: SentencePiece drops the leading
  // space of a text's first piece, which is wrong for a piece that continues a prompt.
  explicit DetokenizeStream(const Tokenizer& t, const std::vector<int32_t>& context = {});
  std::string push(int32_t id);
  std::string flush();  // whatever was held back (an incomplete character at the very end)

 private:
  std::string render() const;  // decode(ids_) less a trailing incomplete character
  std::string emit(std::string text);
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;  // a window of the latest ids (bounded: O(1) work per token)
  std::string emitted_;       // what ids_ renders to, as far as it was emitted
};

struct TokenizerTrainOptions {
  std::vector<std::string> inputs;  // text files
  std::string model_prefix;         // writes <prefix>.model and <prefix>.vocab
  int64_t vocab_size = 8000;
  int64_t max_sentences = 2000000;  // sampled lines (input_sentence_size)
};
// Trains a BPE model with byte fallback and the released special ids (unk=pad=0, bos=1, eos=2).
void train_tokenizer(const TokenizerTrainOptions& o);

}  // namespace tnl::model
