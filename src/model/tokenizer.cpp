// tokenizer.cpp: see tokenizer.h.
#include "model/tokenizer.h"

#include <algorithm>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "tnl/error.h"

namespace tnl::model {

Tokenizer::Tokenizer(const std::string& path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(path) {
  const auto st = sp_->Load(path);
  if (!st.ok()) throw Error(detail::cat(path, ": cannot load the SentencePiece model: ", st.ToString()));
}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto st = sp_->Encode(text, &ids);
  if (!st.ok()) throw Error(detail::cat(path_, ": encode failed: ", st.ToString()));
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<int> v(ids.begin(), ids.end());
  for (int id : v)
    if (id < 0 || id >= sp_->GetPieceSize())
      throw ArgumentError(detail::cat("tnl::model::Tokenizer::decode: argument 'ids': ", id,
                                      " is outside the vocabulary 0..", sp_->GetPieceSize() - 1));
  std::string text;
  const auto st = sp_->Decode(v, &text);
  if (!st.ok()) throw Error(detail::cat(path_, ": decode failed: ", st.ToString()));
  return text;
}

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int32_t Tokenizer::bos_id() const { return sp_->bos_id(); }
int32_t Tokenizer::eos_id() const { return sp_->eos_id(); }

namespace {
constexpr size_t kContextIds = 8;    // context kept before the first new token
constexpr size_t kWindowMax = 64;    // the window is cut back to kContextIds beyond this
}  // namespace

DetokenizeStream::DetokenizeStream(const Tokenizer& t, const std::vector<int32_t>& context) : tok_(t) {
  ids_.assign(context.end() - (ptrdiff_t)std::min(context.size(), kContextIds), context.end());
  emitted_ = render();
}

std::string DetokenizeStream::render() const {
  std::string text = tok_.decode(ids_);
  // Byte-fallback tokens arrive one byte each; until a character is complete, SentencePiece
  // renders its bytes as U+FFFD. Hold trailing U+FFFD back until the next token or flush().
  static const std::string kReplacement = "\xef\xbf\xbd";
  while (text.size() >= 3 && text.compare(text.size() - 3, 3, kReplacement) == 0)
    text.resize(text.size() - 3);
  return text;
}

std::string DetokenizeStream::emit(std::string text) {
  // SentencePiece may re-render earlier text (a leading space): emit only what is new.
  size_t common = 0;
  while (common < text.size() && common < emitted_.size() && text[common] == emitted_[common]) ++common;
  std::string out = text.substr(common);
  emitted_ = std::move(text);
  return out;
}

std::string DetokenizeStream::push(int32_t id) {
  ids_.push_back(id);
  std::string out = emit(render());
  // Keep the latest ids as the context of the next ones and re-render them as the new baseline,
  // when nothing is held back (so no character is split across the cut).
  if (ids_.size() > kWindowMax && emitted_ == tok_.decode(ids_)) {
    ids_.erase(ids_.begin(), ids_.end() - (ptrdiff_t)kContextIds);
    emitted_ = render();
  }
  return out;
}

std::string DetokenizeStream::flush() { return emit(tok_.decode(ids_)); }

void train_tokenizer(const TokenizerTrainOptions& o) {
  TNL_ARG_CHECK(!o.inputs.empty(), "tnl::model::train_tokenizer", "inputs", "expected text files");
  TNL_ARG_CHECK(o.vocab_size >= 300, "tnl::model::train_tokenizer", "vocab_size",
                "expected >= 300 (256 byte pieces + specials + merges), got ", o.vocab_size);
  std::string files;
  for (const std::string& f : o.inputs) files += (files.empty() ? "" : ",") + f;
  const std::string args =
      "--input=" + files + " --model_prefix=" + o.model_prefix + " --model_type=bpe" +
      " --vocab_size=" + std::to_string(o.vocab_size) + " --byte_fallback=true" +
      " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --character_coverage=0.9995" +
      " --input_sentence_size=" + std::to_string(o.max_sentences) +
      " --shuffle_input_sentence=true --split_digits=true --num_threads=2 --minloglevel=2";
  const auto st = sentencepiece::SentencePieceTrainer::Train(args);
  if (!st.ok()) throw Error(detail::cat("tnl tokenizer train: ", st.ToString()));
}

}  // namespace tnl::model
