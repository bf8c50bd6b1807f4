#!/usr/bin/env bash
# make-build-deps.sh: copies this machine's build dependencies that a bare GPU machine may lack
# (GoogleTest, OpenBLAS with cblas.h, SentencePiece) into build-deps/ (git-ignored), which
# scripts/gpu-check.sh uses as a CMake prefix and include/library path. Run it here after
# scripts/install-deps.sh, then carry build-deps/ to the GPU machine with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
D=build-deps
rm -rf "$D" && mkdir -p "$D/include" "$D/lib"
multi=/usr/lib/x86_64-linux-gnu
# GoogleTest: headers, static libraries and CMake package files.
cp -r /usr/include/gtest /usr/include/gmock "$D/include/"
mkdir -p "$D/lib/x86_64-linux-gnu"
cp "$multi"/libgtest*.a "$multi"/libgmock*.a "$D/lib/x86_64-linux-gnu/"
cp -r "$multi/cmake" "$D/lib/x86_64-linux-gnu/" 2>/dev/null || true
# OpenBLAS (and the Fortran runtime it needs): library and CBLAS headers.
cp -L "$multi/libopenblas.so.0" "$D/lib/libopenblas.so.0"
ln -s libopenblas.so.0 "$D/lib/libopenblas.so"  # a link inside the folder: one copy travels
for lib in libgfortran.so.5 libquadmath.so.0; do cp -L "$multi/$lib" "$D/lib/"; done
for h in cblas.h openblas_config.h; do cp -L "/usr/include/x86_64-linux-gnu/$h" "$D/include/"; done
# SentencePiece: libraries and headers.
for lib in libsentencepiece libsentencepiece_train; do
  cp -L "$multi/$lib.so.0" "$D/lib/"
  ln -s "$lib.so.0" "$D/lib/$lib.so"
done
cp /usr/include/sentencepiece_processor.h /usr/include/sentencepiece_trainer.h "$D/include/"
du -sh "$D"
