# deps-env.sh: sourced (from the repository root) by the scripts that build on a bare GPU
# machine: build-deps/ (GTest, OpenBLAS, SentencePiece; made by scripts/make-build-deps.sh),
# when present, as a CMake prefix and an include and library path.
if [ -d build-deps ]; then
  DEPS=$PWD/build-deps
  export CMAKE_PREFIX_PATH=$DEPS${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export LD_LIBRARY_PATH=$DEPS/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export LIBRARY_PATH=$DEPS/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
  export CPATH=$DEPS/include${CPATH:+:$CPATH}
fi
