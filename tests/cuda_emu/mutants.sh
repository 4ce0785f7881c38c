#!/usr/bin/env bash
# mutants.sh EMU_LIB TEST_BACKENDS: that the CUDA emulator catches real bugs in the real kernels.
# It builds the emulated plugin from cuda/ as it is (test_backends must pass on it), then once
# for each mutant below: one line of one file broken the way a person breaks it (a barrier
# removed, a transpose flag swapped), and test_backends must fail on it, in the checks named.
# EMU_LIB is the emulator's static library (libfb_cuda_emu.a), TEST_BACKENDS the comparison.
set -uo pipefail
cd "$(dirname "$0")/../.."
lib=$1 check=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
blas=$(pkg-config --libs openblas)
flags=(-O1 -fPIC -fvisibility=hidden -w -Itests/cuda_emu/include -Iengine)

# compile SRC.cu (as host C++, from its directory) into OBJ
compile() {
  printf '#include "%s"\n' "$(realpath "$1")" >"$2.cpp"
  g++ -std=c++17 "${flags[@]}" -I"$(dirname "$1")" -c "$2.cpp" -o "$2"
}

# the plugin from base objects, with FILE.cu replaced by DIR/FILE.cu when given
link() { # out [mutated.cu]
  local objs=() f name
  for f in cuda/*.cu; do
    name=$(basename "$f" .cu)
    if [ -n "${2:-}" ] && [ "$name" = "$(basename "$2" .cu)" ]; then
      compile "$2" "$tmp/$name.mut.o" || return 1
      objs+=("$tmp/$name.mut.o")
    else
      objs+=("$tmp/$name.o")
    fi
  done
  g++ -shared -o "$1" "${objs[@]}" "$tmp/plugin.o" "$lib" $blas
}

for f in cuda/*.cu; do compile "$f" "$tmp/$(basename "$f" .cu).o" || exit 1; done
gcc -std=gnu11 "${flags[@]}" -Icuda -c cuda/plugin.c -o "$tmp/plugin.o" || exit 1
link "$tmp/base.so" || exit 1
export FB_TEST_REQUIRE_GPU=1 FB_CUDA_LOSS_CHUNK=384
if ! FB_CUDA_PLUGIN=$tmp/base.so "$check" >"$tmp/base.log" 2>&1; then
  tail -20 "$tmp/base.log"
  echo "mutants: the unmutated plugin fails its checks: the mutants would prove nothing"
  exit 1
fi
echo "unmutated: every check passes"

failures=0
# mutant FILE LINE-PATTERN REPLACEMENT OCCURRENCE CHECKS WHAT
mutant() {
  local file=$1 pattern=$2 replacement=$3 nth=$4 checks=$5 what=$6
  local mutated=$tmp/mut/$(basename "$file")
  mkdir -p "$tmp/mut"
  cp cuda/*.cuh cuda/*.h "$tmp/mut/"
  PAT=$pattern REP=$replacement NTH=$nth perl -ne \
    'if (index($_, $ENV{PAT}) >= 0 && ++$n == $ENV{NTH}) { s/^(\s*).*$/$1$ENV{REP}/; $c = 1 }
     print; END { exit 3 unless $c }' "$file" >"$mutated" ||
    { echo "FAIL mutant '$what': line '$pattern' (#$nth) not found in $file"; failures=$((failures + 1)); return; }
  if [ "$file" = cuda/common.cuh ]; then # a header: every file that includes it, rebuilt
    for f in cuda/*.cu; do cp "$f" "$tmp/mut/"; done
    local objs=()
    for f in "$tmp"/mut/*.cu; do
      compile "$f" "$f.o" || return
      objs+=("$f.o")
    done
    g++ -shared -o "$tmp/mut.so" "${objs[@]}" "$tmp/plugin.o" "$lib" $blas || return
  else
    link "$tmp/mut.so" "$mutated" || { echo "FAIL mutant '$what' does not build"; failures=$((failures + 1)); return; }
  fi
  local out
  out=$(FB_CUDA_PLUGIN=$tmp/mut.so "$check" "$checks" 2>&1)
  local rc=$?
  if [ $rc -eq 0 ]; then
    echo "FAIL mutant '$what' passes every '$checks' check: the emulator missed it"
    failures=$((failures + 1))
  else
    echo "caught: $what"
    echo "  $(grep -m1 -E 'test_backends.c:[0-9]+: |cuda-emu: |ERROR' <<<"$out" | sed 's/^ *[^ ]*test_backends.c:[0-9]*: //')"
  fi
  rm -rf "$tmp/mut" "$tmp/mut.so"
}

mutant cuda/attention.cu "__syncthreads(); /* the last tile's K, V, P are read */" "" 1 attention \
  "attention forward: no barrier before the next key tile overwrites the last"
mutant cuda/attention.cu "__syncthreads();" "" 2 attention \
  "attention forward: no barrier between loading a key tile and reading it"
mutant cuda/attention.cu "__syncthreads();" "" 4 attention \
  "attention forward: no barrier between writing P and the rows' factors and reading them"
mutant cuda/attention.cu "acc[u].x[e] *= rowf[" "acc[u].x[e] *= 1.0f;" 1 attention \
  "attention forward: the output so far not rescaled when a row's max grows"
mutant cuda/attention.cu "__syncthreads();" "" 10 attention \
  "attention dq: no barrier between writing dS and reading it"
mutant cuda/attention.cu "__syncthreads();" "" 12 attention \
  "attention dk/dv: no barrier between loading a query tile and reading it"
mutant cuda/attention.cu "__syncthreads(); /* every S and dP is read" "" 1 attention \
  "attention dk/dv: P and dS overwrite S and dP before every thread has read them"
mutant cuda/attention.cu "typedef typename std::conditional<TA, wmma::col_major" \
  "typedef wmma::row_major layout_a;" 1 attention \
  "attention dk/dv: P^T and dS^T read row-major, as P and dS"
mutant cuda/attention.cu "f(tiles::row(u) + slot[i] / 16, tiles::col(u) + slot[i] % 16" \
  "f(tiles::row(u) + slot[i] % 16, tiles::col(u) + slot[i] / 16, acc[u].x[i]);" 1 attention \
  "attention: a fragment slot's row and column swapped"
mutant cuda/common.cuh "__syncthreads();" "" 2 rows \
  "block sum: no barrier between writing each warp's partial sum and reading them"
mutant cuda/matmul.cu "FB_CUBLAS_CHECK(cublasGemmEx(fb_cuda_cublas_writing(written), tB ? CUBLAS_OP_T" \
  "FB_CUBLAS_CHECK(cublasGemmEx(fb_cuda_cublas_writing(written), tB ? CUBLAS_OP_N : CUBLAS_OP_T," 1 matmul \
  "cuBLAS: op(B) with its transpose flag swapped"
mutant cuda/matmul.cu "tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, typeB, ldb, A," \
  "tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, typeB, ldb + 1, A," 1 matmul \
  "cuBLAS: a leading dimension one too long"
mutant cuda/matmul.cu "uint32_t epilogue = CUBLASLT_EPILOGUE_BIAS;" \
  "uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;" 1 bias_epilogue \
  "cuBLASLt: the bias epilogue left off"
mutant cuda/shadow.cu "if (s.live && overlaps(s.x, s.n * sizeof(float), p, bytes))" "(void)p;" 1 \
  shadows "bf16 shadows: never invalidated by work that names what it writes"
mutant cuda/shadow.cu "void fb_cuda_wrote_anything(void) { S.gen++; }" \
  "void fb_cuda_wrote_anything(void) {}" 1 shadows \
  "bf16 shadows: kept across work that may write anywhere"
mutant cuda/rmsnorm.cu "float v = a[row + c] + b[row + c];" "float v = a[row + c];" 1 rows \
  "rmsnorm: the residual left out of the fused add and norm"
mutant cuda/rmsnorm.cu "if (out16) out16[row + c] = __float2bfloat16_rn(y);" \
  "if (out16) out16[row + c] = __float2bfloat16_rn(x[c]);" 1 shadows \
  "rmsnorm: its shadow holds the input, not the output (the products read shadows)"
mutant cuda/graph.cu "if (e.used && e.key == key) return &e;" "if (e.used) return &e;" 1 replay \
  "CUDA graphs: a call of another key (another shape) launches the first key's graph"
mutant cuda/graph.cu "FB_CUDA_CHECK(cudaGraphLaunch(e->exec, fb_cuda_stream()));" "" 1 replay \
  "CUDA graphs: the captured work never launched"
[ $failures -eq 0 ] && echo "mutants: every one caught"
exit $((failures > 0))
