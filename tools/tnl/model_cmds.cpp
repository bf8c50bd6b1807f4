// model_cmds.cpp: `tnl generate`, `tnl eval` and `tnl info`, TransNormerLLM from a Hugging Face
// model directory (config.json, weights, tokenizer.model), on the CPU (fp32) or a CUDA GPU (bf16).
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "args.h"
#include "train/trainer.h"  // latest_checkpoint
#include "model/checkpoint.h"
#include "model/cuda/transnormer_cuda.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "model/transnormer.h"
#include "progress.h"
#include "tnl/device.h"
#include "tnl/error.h"

namespace tnl::cli {
namespace {

double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string required(const Args& a, const char* flag) {
  if (!a.has(flag)) throw ArgumentError(detail::cat("flag '--", flag, "': required"));
  return a.str(flag, "");
}

// --model: a model directory, or a `tnl train` output directory (then its newest checkpoint).
std::string model_dir(const Args& a) {
  const std::string dir = required(a, "model");
  struct stat st;
  if (::stat((dir + "/config.json").c_str(), &st) != 0 && ::stat((dir + "/latest").c_str(), &st) == 0) {
    const std::string ckpt = train::latest_checkpoint(dir);
    std::fprintf(stderr, "using %s, the newest checkpoint of the training run in %s\n", ckpt.c_str(),
                 dir.c_str());
    return ckpt;
  }
  return dir;
}

}  // namespace

// True for --device cuda (after checking that this build and machine have it), false for cpu.
bool use_cuda(const Args& a) {
  const std::string dev = a.str("device", "cpu");
  if (dev == "cpu") return false;
  if (dev != "cuda") throw ArgumentError("flag '--device': expected cpu or cuda, got '" + dev + "'");
  if (!cuda_built())
    throw ArgumentError("flag '--device': cuda requested, but this build of tnl has no CUDA backend (build with -DTNL_CUDA=ON)");
  if (cuda_device_count() == 0) throw ArgumentError("flag '--device': cuda requested, but no CUDA device is visible");
  return true;
}

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ArgumentError(detail::cat("cannot open '", path, "'"));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string human_bytes(double b) {
  char s[32];
  if (b >= 1 << 30) std::snprintf(s, sizeof s, "%.2f GiB", b / (1 << 30));
  else if (b >= 1 << 20) std::snprintf(s, sizeof s, "%.1f MiB", b / (1 << 20));
  else std::snprintf(s, sizeof s, "%.1f KiB", b / 1024);
  return s;
}

// -log softmax(logits)[target]
double nll(const float* logits, int64_t vocab, int32_t target) {
  double mx = logits[0];
  for (int64_t v = 1; v < vocab; ++v) mx = std::max(mx, (double)logits[v]);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp((double)logits[v] - mx);
  return std::log(sum) + mx - logits[target];
}

// Prefill, then sample and decode until eos or max_tokens; B == 1 streams to stdout.
template <class State, class Net>
int run_generate(Net& net, const model::Tokenizer& tok, const std::vector<std::string>& texts,
                 const model::SamplingOptions& so, int64_t max_tokens, int64_t chunk, bool add_bos,
                 const std::string& dir, double t_load) {
  const int64_t V = net.config().vocab_size, B = (int64_t)texts.size();
  std::vector<std::vector<int32_t>> prompts;
  for (const std::string& t : texts) {
    std::vector<int32_t> ids = tok.encode(t);
    if (add_bos) ids.insert(ids.begin(), tok.bos_id());
    if (ids.empty()) ids.push_back(tok.bos_id());  // an empty prompt starts from BOS
    prompts.push_back(std::move(ids));
  }
  std::fprintf(stderr, "loaded %s in %.1f s (%lld parameters)\n", dir.c_str(), seconds() - t_load,
               (long long)net.config().num_parameters());

  std::vector<float> logits(B * V);
  State st;
  const double t0 = seconds();
  net.prefill(prompts, st, logits.data(), chunk);
  const double t_prefill = seconds() - t0;
  int64_t prompt_tokens = 0;
  for (const auto& p : prompts) prompt_tokens += (int64_t)p.size();

  std::vector<model::Sampler> samplers;
  for (int64_t b = 0; b < B; ++b) {
    model::SamplingOptions o = so;
    o.seed = so.seed + (uint64_t)b;
    samplers.emplace_back(o);
  }
  std::vector<std::vector<int32_t>> history = prompts, out(B);
  std::vector<char> done(B, 0);
  model::DetokenizeStream stream(tok, prompts[0]);
  if (B == 1) std::fputs(texts[0].c_str(), stdout);
  // On the GPU the tokens after the first are chosen there (decode_sample: the Sampler's rules,
  // with this host's random numbers, one generator per sequence seeded like its Sampler); only
  // the ids cross the bus.
  constexpr bool on_gpu = std::is_same_v<Net, model::TransNormerCuda>;
  std::vector<std::mt19937_64> rngs;
  for (int64_t b = 0; b < B; ++b) rngs.emplace_back(so.seed + (uint64_t)b);
  std::vector<float> uniforms(B);
  std::vector<int32_t> next(B), picked(B);
  int64_t steps = 0;
  const double t1 = seconds();
  for (; steps < max_tokens; ++steps) {
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) next[b] = tok.eos_id();
      else if (on_gpu && steps > 0) next[b] = picked[b];
      else next[b] = samplers[b].next(logits.data() + b * V, V, history[b]);
      if (done[b]) continue;
      if (next[b] == tok.eos_id()) {
        done[b] = 1;
        continue;
      }
      history[b].push_back(next[b]);
      out[b].push_back(next[b]);
      if (B == 1) {
        std::fputs(stream.push(next[b]).c_str(), stdout);  // streamed as it comes
        std::fflush(stdout);
      }
    }
    if (std::all_of(done.begin(), done.end(), [](char d) { return d != 0; })) break;
    if (steps + 1 < max_tokens) {
      if constexpr (on_gpu) {
        for (int64_t b = 0; b < B; ++b)  // in [0, 1): fp32 rounding must not reach 1
          uniforms[b] = std::min((float)std::uniform_real_distribution<double>(0.0, 1.0)(rngs[b]), 0x1.fffffep-1f);
        net.decode_sample(next.data(), uniforms.data(), so, picked.data(), st);
      } else {
        net.decode(next.data(), logits.data(), st);
      }
    }
  }
  const double t_decode = seconds() - t1;
  if (B == 1) {
    std::fputs(stream.flush().c_str(), stdout);
    std::fputc('\n', stdout);
  } else {
    for (int64_t b = 0; b < B; ++b) {
      model::DetokenizeStream text(tok, prompts[b]);  // the continuation as it follows its prompt
      std::string cont;
      for (int32_t id : out[b]) cont += text.push(id);
      std::printf("[%lld] %s%s%s\n", (long long)b, texts[b].c_str(), cont.c_str(), text.flush().c_str());
    }
  }
  std::fflush(stdout);  // the text before the statistics on stderr
  int64_t generated = 0;
  for (const auto& o : out) generated += (int64_t)o.size();
  std::fprintf(stderr, "prefill %lld tokens in %.2f s (%.0f tok/s); decode %lld tokens in %.2f s (%.1f tok/s); "
                       "state %s, constant in context length\n",
               (long long)prompt_tokens, t_prefill, prompt_tokens / std::max(t_prefill, 1e-9),
               (long long)generated, t_decode, generated / std::max(t_decode, 1e-9), human_bytes((double)st.bytes()).c_str());
  return 0;
}

}  // namespace

int generate(int argc, char** argv) {
  const Args a(argc, argv,
               {"model", "prompt", "prompts-file", "device", "max-tokens", "temperature", "top-k",
                "top-p", "repetition-penalty", "seed", "chunk"},
               {"greedy", "add-bos"});
  const std::string dir = model_dir(a);
  std::vector<std::string> texts;
  if (a.has("prompts-file")) {
    std::istringstream in(read_file(a.str("prompts-file", "")));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) texts.push_back(line);
  } else {
    texts.push_back(required(a, "prompt"));
  }
  if (texts.empty()) throw ArgumentError("flag '--prompts-file': no prompts in the file");
  model::SamplingOptions so;
  so.greedy = a.flag("greedy");
  so.temperature = (float)a.real("temperature", 1.0);
  so.top_k = a.integer("top-k", 0);
  so.top_p = (float)a.real("top-p", 1.0);
  so.repetition_penalty = (float)a.real("repetition-penalty", 1.03);
  so.seed = (uint64_t)a.integer("seed", (int64_t)std::random_device{}());
  const int64_t max_tokens = a.integer("max-tokens", 128);
  if (max_tokens < 1) throw ArgumentError("flag '--max-tokens': expected >= 1");
  const bool cuda = use_cuda(a);
  const int64_t chunk = a.integer("chunk", 4096);
  if (chunk < 1) throw ArgumentError("flag '--chunk': expected >= 1");

  const double t_load = seconds();
  const model::Checkpoint ck(dir);
  const model::Tokenizer tok(dir + "/tokenizer.model");
  if (cuda) {
    model::TransNormerCuda net(ck);
    return run_generate<model::CudaGenState>(net, tok, texts, so, max_tokens, chunk, a.flag("add-bos"), dir, t_load);
  }
  const model::TransNormer net(ck);
  return run_generate<model::GenState>(net, tok, texts, so, max_tokens, chunk, a.flag("add-bos"), dir, t_load);
}

namespace {

// Perplexity of one stream through the carried state: each token predicted from all before it.
template <class State, class Net>
int run_eval(Net& net, const std::vector<int32_t>& ids, int64_t chunk, const std::string& path,
             size_t text_bytes) {
  const int64_t V = net.config().vocab_size, T = (int64_t)ids.size();
  State st;
  std::vector<float> logits(std::max<int64_t>(chunk, 1) * V);
  net.prefill({{ids[0]}}, st, logits.data());
  double total_nll = nll(logits.data(), V, ids[1]);
  int64_t scored = 1;
  Progress bar((double)T, "tok");
  for (int64_t pos = 1; pos + 1 < T; pos += chunk) {
    const int64_t n = std::min(chunk, T - 1 - pos);
    net.extend(ids.data() + pos, n, st, logits.data());
    for (int64_t i = 0; i < n; ++i) total_nll += nll(logits.data() + i * V, V, ids[pos + i + 1]);
    scored += n;
    char note[64];
    std::snprintf(note, sizeof note, "ppl %.3f", std::exp(total_nll / scored));
    bar.update((double)(pos + n + 1), note);
  }
  bar.finish((double)T);
  std::printf("perplexity %.4f over %lld tokens of %s (%.4f nats/token, %.4f bits/byte)\n",
              std::exp(total_nll / scored), (long long)scored, path.c_str(), total_nll / scored,
              total_nll / std::log(2.0) / (double)text_bytes);
  return 0;
}

}  // namespace

int eval(int argc, char** argv) {
  const Args a(argc, argv, {"model", "text", "device", "chunk", "max-tokens"}, {});
  const bool cuda = use_cuda(a);
  const std::string dir = model_dir(a), path = required(a, "text");
  const int64_t chunk = a.integer("chunk", 1024);
  if (chunk < 1) throw ArgumentError("flag '--chunk': expected >= 1");
  const model::Checkpoint ck(dir);
  const model::Tokenizer tok(dir + "/tokenizer.model");
  const std::string text = read_file(path);
  std::vector<int32_t> ids = tok.encode(text);
  const int64_t limit = a.integer("max-tokens", (int64_t)ids.size());
  if ((int64_t)ids.size() > limit) ids.resize(limit);
  if (ids.size() < 2) throw ArgumentError(detail::cat("flag '--text': '", path, "' holds fewer than 2 tokens"));
  if (cuda) {
    model::TransNormerCuda net(ck);
    return run_eval<model::CudaGenState>(net, ids, chunk, path, text.size());
  }
  const model::TransNormer net(ck);
  return run_eval<model::GenState>(net, ids, chunk, path, text.size());
}

int info(int argc, char** argv) {
  const Args a(argc, argv, {"model"}, {"no-check"});
  const std::string dir = model_dir(a);
  const model::Checkpoint ck(dir, !a.flag("no-check"));
  const model::Config& c = ck.config();
  int64_t state_floats = 0;
  for (int64_t l = 0; l < c.num_layers; ++l)
    state_floats += c.num_heads * (c.use_lrpe[l] ? 2 : 1) * c.head_dim() * c.head_dim();
  const std::string dtype = ck.tensor("model.embed_tokens.weight").dtype;
  int64_t stored = 0;
  for (const model::ExpectedTensor& e : model::expected_tensors(c))
    if (ck.has(e.name)) stored += ck.tensor(e.name).bytes;
  std::printf("model            %s (%s weights, %s)\n", dir.c_str(), ck.weights_format().c_str(), dtype.c_str());
  std::printf("layers           %lld, d_model %lld, hidden %lld, heads %lld (head dim %lld), glu %lld\n",
              (long long)c.num_layers, (long long)c.d_model, (long long)c.hidden_dim, (long long)c.num_heads,
              (long long)c.head_dim(), (long long)c.glu_dim);
  std::printf("vocabulary       %lld (pad %lld, bos %lld, eos %lld), embedding scale %.3f\n",
              (long long)c.vocab_size, (long long)c.pad_id, (long long)c.bos_id, (long long)c.eos_id, c.embed_scale());
  std::string lrpe;
  for (int64_t l = 0; l < c.num_layers; ++l)
    if (c.use_lrpe[l]) lrpe += (lrpe.empty() ? "" : ", ") + std::to_string(l);
  std::printf("LRPE layers      %s\n", lrpe.empty() ? "none" : lrpe.c_str());
  std::printf("parameters       %lld (tied embedding counted once)\n", (long long)c.num_parameters());
  std::printf("weights on disk  %s\n", human_bytes((double)stored).c_str());
  std::printf("memory, cpu fp32 %s of weights + %s of state per sequence (constant in context length)\n",
              human_bytes(4.0 * c.num_parameters()).c_str(), human_bytes(4.0 * state_floats).c_str());
  std::printf("memory, cuda     %s of bf16 weights + %s of fp32 state per sequence\n",
              human_bytes(2.0 * c.num_parameters()).c_str(), human_bytes(4.0 * state_floats).c_str());
  return 0;
}

int tokenizer_train(int argc, char** argv) {
  const Args a(argc, argv, {"input", "output", "vocab-size", "max-sentences"}, {});
  model::TokenizerTrainOptions o;
  std::istringstream in(required(a, "input"));
  for (std::string f; std::getline(in, f, ',');) o.inputs.push_back(f);
  o.model_prefix = required(a, "output");
  o.vocab_size = a.integer("vocab-size", 8000);
  o.max_sentences = a.integer("max-sentences", 2000000);
  model::train_tokenizer(o);
  std::printf("wrote %s.model and %s.vocab\n", o.model_prefix.c_str(), o.model_prefix.c_str());
  return 0;
}

}  // namespace tnl::cli
