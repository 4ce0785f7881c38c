/* selftest.cu (CUDA emulator): each guarantee of docs/cuda-emulator.md shown on a kernel, with
 * the bug it catches: barriers and every warp primitive against plain references, thread
 * orders, the faults of broken kernels (each in a child process: a fault breaks the context for
 * good), launch and copy checks, the reference cublasGemmEx, bf16 rounding, the FB_EMU_*
 * settings, WMMA (a GEMM, its element layout, its faults). Exit 0 when every check passes;
 * `--child NAME` runs one child scenario. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <mma.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

extern char **environ;

/* ---- harness ---- */

static int failed_checks;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "  %s:%d: %s: ", __FILE__, __LINE__, #cond);                                 \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      failed_checks++;                                                                             \
    }                                                                                              \
  } while (0)

#define CUDA_OK(call) CHECK((call) == cudaSuccess, "%s", cudaGetErrorName(cudaGetLastError()))

static bool has(const std::string &s, const char *needle) {
  return s.find(needle) != std::string::npos;
}

static double seconds(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now() { return seconds(CLOCK_MONOTONIC); }
/* the emulator runs kernels on the calling thread: its CPU time is what they cost, also on a
 * machine that others load */
static double cpu_now() { return seconds(CLOCK_THREAD_CPUTIME_ID); }

struct child_result {
  int status;      /* as waitpid gives it */
  std::string out; /* stdout and stderr together */
  bool exited_ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

/* Run `--child name` in a fresh process (so it reads the FB_EMU_* settings anew), with the
 * parent's environment minus every FB_EMU_* variable, plus env. */
static child_result run_child(const char *name, std::vector<std::string> env = {}) {
  std::vector<char *> envp;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "FB_EMU_", 7) != 0) envp.push_back(*e);
  for (std::string &kv : env) envp.push_back(&kv[0]);
  envp.push_back(nullptr);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = 0;
  char *argv[] = {exe, (char *)"--child", (char *)name, nullptr};
  int fds[2];
  if (pipe(fds) != 0) abort();
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) { /* only async-signal-safe calls until exec: the parent may have threads */
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    execve(exe, argv, envp.data());
    _exit(127);
  }
  close(fds[1]);
  child_result r = {0, ""};
  char buf[4096];
  ssize_t got;
  while ((got = read(fds[0], buf, sizeof buf)) > 0) r.out.append(buf, (size_t)got);
  close(fds[0]);
  waitpid(pid, &r.status, 0);
  return r;
}

/* What f() writes to stderr (the emulator's one-line reports). */
template <typename F>
static std::string capture_stderr(F f) {
  fflush(stderr);
  int saved = dup(2);
  FILE *tmp = tmpfile();
  dup2(fileno(tmp), 2);
  f();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string s;
  rewind(tmp);
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, tmp)) > 0) s.append(buf, got);
  fclose(tmp);
  return s;
}

/* A device buffer of n T, freed at scope end. */
template <typename T>
struct dbuf {
  T *p = nullptr;
  size_t n;
  explicit dbuf(size_t count) : n(count) {
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) abort();
  }
  dbuf(const std::vector<T> &v) : dbuf(v.size()) { put(v); }
  ~dbuf() { cudaFree(p); }
  void put(const std::vector<T> &v) {
    if (cudaMemcpy(p, v.data(), n * sizeof(T), cudaMemcpyHostToDevice)) abort();
  }
  std::vector<T> get() const {
    std::vector<T> v(n);
    if (cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost)) abort();
    return v;
  }
};

/* The source lines of the self-test the fault lines name, as "selftest.cu:LINE" strings. */
static int count_lines_named(const std::string &s) {
  int n = 0;
  for (size_t at = 0; (at = s.find("selftest.cu:", at)) != std::string::npos; at++) n++;
  return n;
}

/* ---- barriers and shared memory ---- */

constexpr int TILE = 16;

/* out[W,H] = in[H,W]^T through a shared tile. Without the barrier a thread reads tile slots
 * other threads have not written yet: the emulator must show that as wrong output. */
__global__ void transpose_kernel(float *out, const float *in, int W, int H, int barrier) {
  __shared__ float tile[TILE][TILE + 1];
  int x = blockIdx.x * TILE + threadIdx.x, y = blockIdx.y * TILE + threadIdx.y;
  if (x < W && y < H) tile[threadIdx.y][threadIdx.x] = in[(size_t)y * W + x];
  if (barrier) __syncthreads();
  x = blockIdx.y * TILE + threadIdx.x;
  y = blockIdx.x * TILE + threadIdx.y;
  if (x < H && y < W) out[(size_t)y * H + x] = tile[threadIdx.x][threadIdx.y];
}

static void test_transpose() {
  const int W = 48, H = 80; /* not square: a swapped index shows */
  std::vector<float> in(W * H), want(W * H);
  for (int i = 0; i < W * H; i++) in[i] = (float)i;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) want[(size_t)x * H + y] = in[(size_t)y * W + x];
  dbuf<float> din(in), dout(W * H);
  dim3 grid(W / TILE, H / TILE), block(TILE, TILE);
  FB_LAUNCH(transpose_kernel, grid, block, 0, 0, dout.p, din.p, W, H, 1);
  CUDA_OK(cudaGetLastError());
  std::vector<float> got = dout.get();
  int bad = 0;
  for (int i = 0; i < W * H; i++) bad += got[i] != want[i];
  CHECK(bad == 0, "%d of %d wrong with the barrier", bad, W * H);

  dout.put(std::vector<float>(W * H, 0.0f));
  FB_LAUNCH(transpose_kernel, grid, block, 0, 0, dout.p, din.p, W, H, 0);
  got = dout.get();
  bad = 0;
  for (int i = 0; i < W * H; i++) bad += got[i] != want[i];
  CHECK(bad > 0, "the transpose without its barrier gave the right answer");
  printf("  transpose %dx%d: 0 wrong with the barrier, %d of %d wrong without\n", H, W, bad, W * H);
}

/* Threads past n return before the barrier: it still releases (exited threads count). */
__global__ void tail_sum_kernel(float *out, const float *in, int n) {
  __shared__ float s[128];
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  s[threadIdx.x] = in[i];
  __syncthreads();
  if (threadIdx.x == 0) {
    int m = n - (int)(blockIdx.x * blockDim.x);
    if (m > (int)blockDim.x) m = blockDim.x;
    float acc = 0.0f;
    for (int k = 0; k < m; k++) acc += s[k];
    out[blockIdx.x] = acc;
  }
}

static void test_barrier_with_exited_threads() {
  const int n = 300;
  std::vector<float> in(n, 1.0f);
  dbuf<float> din(in), dout(3);
  FB_LAUNCH(tail_sum_kernel, 3, 128, 0, 0, dout.p, din.p, n);
  CUDA_OK(cudaGetLastError());
  std::vector<float> got = dout.get();
  CHECK(got[0] == 128 && got[1] == 128 && got[2] == 44, "%g %g %g", got[0], got[1], got[2]);
}

/* Every (block, thread) coordinate of a 3-D launch, exactly once. */
__global__ void coords_kernel(int *out) {
  int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  int per_block = blockDim.x * blockDim.y * blockDim.z;
  out[b * per_block + t] += 1 + (blockIdx.x << 20 | blockIdx.y << 16 | blockIdx.z << 12 |
                                 threadIdx.x << 8 | threadIdx.y << 4 | threadIdx.z);
}

static void test_coordinates() {
  dim3 grid(3, 2, 2), block(4, 3, 2);
  int total = 3 * 2 * 2 * 4 * 3 * 2;
  dbuf<int> d(std::vector<int>(total, 0));
  FB_LAUNCH(coords_kernel, grid, block, 0, 0, d.p);
  CUDA_OK(cudaGetLastError());
  std::vector<int> got = d.get();
  int bad = 0;
  for (unsigned bz = 0; bz < 2; bz++)
    for (unsigned by = 0; by < 2; by++)
      for (unsigned bx = 0; bx < 3; bx++)
        for (unsigned tz = 0; tz < 2; tz++)
          for (unsigned ty = 0; ty < 3; ty++)
            for (unsigned tx = 0; tx < 4; tx++) {
              int i = (int)((bx + 3 * (by + 2 * bz)) * 24 + tx + 4 * (ty + 3 * tz));
              bad += got[i] != 1 + (int)(bx << 20 | by << 16 | bz << 12 | tx << 8 | ty << 4 | tz);
            }
  CHECK(bad == 0, "%d coordinates wrong", bad);
}

/* ---- warp primitives ---- */

constexpr int N_SHFL = 6 * 6; /* six float shuffles at each of six widths */
constexpr int N_INT = 8, N_VOTE = 8;

/* Each thread of a 64-thread block writes every primitive's result for itself. */
__global__ void warp_kernel(float *f, double *d, int *iv, unsigned *votes) {
  int t = threadIdx.x, lane = t & 31, k = 0;
  float v = 1.5f * t + 0.25f;
  const unsigned full = 0xffffffffu;
  for (int w = 32; w >= 1; w >>= 1) {
    f[t * N_SHFL + k++] = __shfl_sync(full, v, 5, w);
    f[t * N_SHFL + k++] = __shfl_sync(full, v, lane * 3 + 1, w);
    f[t * N_SHFL + k++] = __shfl_up_sync(full, v, 3, w);
    f[t * N_SHFL + k++] = __shfl_down_sync(full, v, 3, w);
    f[t * N_SHFL + k++] = __shfl_xor_sync(full, v, 1, w);
    f[t * N_SHFL + k++] = __shfl_xor_sync(full, v, 5, w); /* reaches earlier segments */
  }
  double dv = t * 0.125 + 1e10;
  d[t * 2] = __shfl_xor_sync(full, dv, 16);
  d[t * 2 + 1] = __shfl_down_sync(full, dv, 1);
  int x = t * 7 - 3;
  int a = __shfl_xor_sync(full, x, 1); /* back to back: each reads the values of its own step */
  int b = __shfl_xor_sync(full, a, 2);
  int c = __shfl_xor_sync(full, b, 4);
  iv[t * N_INT + 0] = __shfl_sync(full, x, 31);
  iv[t * N_INT + 1] = a;
  iv[t * N_INT + 2] = b;
  iv[t * N_INT + 3] = c;
  if (lane < 16) { /* half-warp masks */
    iv[t * N_INT + 4] = __shfl_down_sync(0x0000ffffu, x, 4, 16);
    iv[t * N_INT + 5] = __shfl_sync(0x0000ffffu, x, 15);
    votes[t * N_VOTE + 6] = __ballot_sync(0x0000ffffu, lane & 1);
  } else {
    iv[t * N_INT + 4] = __shfl_up_sync(0xffff0000u, x, 2, 16);
    iv[t * N_INT + 5] = __shfl_sync(0xffff0000u, x, 16);
    votes[t * N_VOTE + 6] = __ballot_sync(0xffff0000u, lane > 20);
  }
  __syncwarp();
  iv[t * N_INT + 6] = __shfl_up_sync(full, x, 1);
  iv[t * N_INT + 7] = __shfl_down_sync(full, x, 31);
  votes[t * N_VOTE + 0] = __ballot_sync(full, lane % 3 == 0);
  votes[t * N_VOTE + 1] = __ballot_sync(full, t >= 40);
  votes[t * N_VOTE + 2] = __any_sync(full, t == 40);
  votes[t * N_VOTE + 3] = __any_sync(full, 0);
  votes[t * N_VOTE + 4] = __all_sync(full, lane < 32);
  votes[t * N_VOTE + 5] = __all_sync(full, lane != 7);
  __syncwarp(0x0000000fu << (lane & ~3)); /* groups of four */
  votes[t * N_VOTE + 7] = __activemask();
}

/* The CUDA programming guide's definitions, written independently of the emulator's PTX rules. */
enum ref_op { R_IDX, R_UP, R_DOWN, R_XOR };
static int ref_src(ref_op op, int lane, int p, int w) {
  int seg = lane / w * w;
  switch (op) {
    case R_IDX: return seg + p % w;
    case R_UP: return lane - seg >= p ? lane - p : lane;
    case R_DOWN: return lane - seg + p < w ? lane + p : lane;
    default: {
      int s = lane ^ p;
      return s < seg + w ? s : lane; /* later segments are out of reach */
    }
  }
}

static void test_warp_primitives() {
  const int n = 64;
  dbuf<float> f(n * N_SHFL);
  dbuf<double> d(n * 2);
  dbuf<int> iv(n * N_INT);
  dbuf<unsigned> votes(n * N_VOTE);
  FB_LAUNCH(warp_kernel, 1, n, 0, 0, f.p, d.p, iv.p, votes.p);
  CUDA_OK(cudaGetLastError());
  std::vector<float> gf = f.get();
  std::vector<double> gd = d.get();
  std::vector<int> gi = iv.get();
  std::vector<unsigned> gv = votes.get();
  int bad = 0;
  auto fv = [](int t) { return 1.5f * t + 0.25f; };
  auto xv = [](int t) { return t * 7 - 3; };
  for (int t = 0; t < n; t++) {
    int lane = t & 31, base = t & ~31, k = 0;
    for (int w = 32; w >= 1; w >>= 1) {
      int src[6] = {ref_src(R_IDX, lane, 5, w), ref_src(R_IDX, lane, lane * 3 + 1, w),
                    ref_src(R_UP, lane, 3, w),  ref_src(R_DOWN, lane, 3, w),
                    ref_src(R_XOR, lane, 1, w), ref_src(R_XOR, lane, 5, w)};
      for (int s = 0; s < 6; s++, k++)
        if (gf[t * N_SHFL + k] != fv(base + src[s])) {
          if (bad++ < 5)
            fprintf(stderr, "  thread %d width %d shuffle %d: %g, want %g\n", t, w, s,
                    gf[t * N_SHFL + k], fv(base + src[s]));
        }
    }
    bad += gd[t * 2] != (base + (lane ^ 16)) * 0.125 + 1e10;
    bad += gd[t * 2 + 1] != (base + (lane < 31 ? lane + 1 : lane)) * 0.125 + 1e10;
    int a = xv(base + (lane ^ 1)), b = xv(base + (lane ^ 3)), c = xv(base + (lane ^ 7));
    int want_i[N_INT] = {xv(base + 31),
                         a,
                         b,
                         c,
                         lane < 16 ? xv(base + (lane + 4 < 16 ? lane + 4 : lane))
                                   : xv(base + (lane - 16 >= 2 ? lane - 2 : lane)),
                         lane < 16 ? xv(base + 15) : xv(base + 16),
                         xv(base + (lane >= 1 ? lane - 1 : lane)),
                         xv(base + (lane == 0 ? 31 : lane))};
    for (int j = 0; j < N_INT; j++) {
      if (gi[t * N_INT + j] != want_i[j] && bad++ < 5)
        fprintf(stderr, "  thread %d int result %d: %d, want %d\n", t, j, gi[t * N_INT + j],
                want_i[j]);
    }
    unsigned thirds = 0, upper = 0, odd = 0, over20 = 0;
    for (int l = 0; l < 32; l++) {
      thirds |= (unsigned)(l % 3 == 0) << l;
      upper |= (unsigned)(base + l >= 40) << l;
      odd |= (unsigned)(l < 16 && (l & 1)) << l;
      over20 |= (unsigned)(l > 20) << l;
    }
    unsigned want_v[N_VOTE] = {thirds,     upper, base == 32, 0, 1, 0, lane < 16 ? odd : over20,
                               0xffffffffu};
    for (int j = 0; j < N_VOTE; j++) {
      if (gv[t * N_VOTE + j] != want_v[j] && bad++ < 5)
        fprintf(stderr, "  thread %d vote %d: 0x%08x, want 0x%08x\n", t, j, gv[t * N_VOTE + j],
                want_v[j]);
    }
  }
  CHECK(bad == 0, "%d warp primitive results differ from the reference", bad);
}

/* __activemask: the lanes that reach the same call together; lanes that left do not count. */
__global__ void activemask_kernel(unsigned *out) {
  int t = threadIdx.x, lane = t & 31;
  out[t] = 0;
  if (t >= 52) return; /* warp 1 keeps lanes 0..19 */
  if (t < 32 && lane < 10)
    out[t] = __activemask();
  else
    out[t] = __activemask();
}

static void test_activemask() {
  dbuf<unsigned> d(64);
  FB_LAUNCH(activemask_kernel, 1, 64, 0, 0, d.p);
  CUDA_OK(cudaGetLastError());
  std::vector<unsigned> got = d.get();
  int bad = 0;
  for (int t = 0; t < 64; t++) {
    unsigned want = t >= 52 ? 0 : t >= 32 ? 0x000fffffu : t < 10 ? 0x000003ffu : 0xfffffc00u;
    bad += got[t] != want;
  }
  CHECK(bad == 0, "%d activemask results wrong (thread 0: 0x%08x, 10: 0x%08x, 32: 0x%08x)", bad,
        got[0], got[10], got[32]);
}

/* ---- atomics, poison, launches ---- */

__global__ void atomic_kernel(float *fs, double *ds, int *is, unsigned long long *us) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(fs, 0.5f);
  atomicAdd(ds, 0.25);
  atomicAdd(is, i);
  atomicAdd(us, 1ull);
}

static void test_atomics() {
  dbuf<float> f(std::vector<float>{0});
  dbuf<double> d(std::vector<double>{0});
  dbuf<int> i(std::vector<int>{0});
  dbuf<unsigned long long> u(std::vector<unsigned long long>{0});
  FB_LAUNCH(atomic_kernel, 4, 256, 0, 0, f.p, d.p, i.p, u.p);
  CHECK(f.get()[0] == 512.0f && d.get()[0] == 256.0, "%g %g", f.get()[0], d.get()[0]);
  CHECK(i.get()[0] == 1023 * 1024 / 2 && u.get()[0] == 1024, "%d %llu", i.get()[0], u.get()[0]);
}

__global__ void half_write_kernel(float *out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n / 2) out[i] = 1.0f; /* the bug: half the output is never written */
}

static void test_poisoned_memory() {
  dbuf<float> d(256);
  std::vector<float> fresh = d.get();
  int nan = 0;
  for (float x : fresh) nan += isnan(x);
  CHECK(nan == 256, "a fresh allocation holds %d NaN of 256", nan);
  FB_LAUNCH(half_write_kernel, 1, 256, 0, 0, d.p, 256);
  std::vector<float> got = d.get();
  nan = 0;
  for (float x : got) nan += isnan(x);
  CHECK(nan == 128, "%d unwritten outputs show as NaN, want 128", nan);
}

__global__ void flag_kernel(int *flag) { *flag = 1; }

static int noarg_runs;
__global__ void noarg_kernel() { noarg_runs++; }

static void test_launch_config() {
  dbuf<int> flag(std::vector<int>{0});
  struct {
    dim3 grid, block;
    const char *why;
  } bad[] = {
      {1, 1025, "more than 1024"},
      {1, dim3(32, 32, 2), "2048 threads"},
      {1, dim3(1, 1, 65), "exceeds the limits"},
      {1, dim3(0, 1, 1), "zero dimension"},
      {dim3(1, 0, 1), 32, "zero dimension"},
      {dim3(1, 65536, 1), 32, "exceeds the limits"},
      {dim3(1, 1, 65536), 32, "exceeds the limits"},
      {dim3(0x80000000u, 1, 1), 32, "exceeds the limits"},
  };
  for (const auto &c : bad) {
    std::string err = capture_stderr([&] {
      FB_LAUNCH(flag_kernel, c.grid, c.block, 0, 0, flag.p);
      CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "%s", c.why);
      CHECK(cudaGetLastError() == cudaSuccess, "a configuration error is not sticky");
    });
    CHECK(has(err, "launch of flag_kernel at ") && has(err, c.why), "%s", err.c_str());
  }
  CHECK(flag.get()[0] == 0, "a kernel with a bad configuration ran");
  std::string err = capture_stderr([&] {
    FB_LAUNCH(flag_kernel, 1, 1, 16, 0, flag.p);
    CHECK(cudaGetLastError() == cudaErrorNotSupported, "dynamic shared memory");
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CUDA_OK(cudaStreamDestroy(s));
    FB_LAUNCH(flag_kernel, 1, 1, 0, s, flag.p);
    CHECK(cudaGetLastError() == cudaErrorInvalidResourceHandle, "a destroyed stream");
    CHECK(cudaStreamSynchronize(s) == cudaErrorInvalidResourceHandle, "a destroyed stream");
    cudaGetLastError();
  });
  CHECK(has(err, "dynamic shared memory") && has(err, "not a live stream"), "%s", err.c_str());
  CHECK(flag.get()[0] == 0, "a refused launch ran");
  FB_LAUNCH(flag_kernel, dim3(1, 65535, 1), 1, 0, 0, flag.p); /* the limits themselves */
  FB_LAUNCH(flag_kernel, 1, dim3(32, 32, 1), 0, 0, flag.p);
  FB_LAUNCH(flag_kernel, 1, dim3(1, 1, 64), 0, 0, flag.p);
  FB_LAUNCH(noarg_kernel, 2, 3, 0, 0);
  CUDA_OK(cudaGetLastError());
  CHECK(flag.get()[0] == 1, "the largest legal block did not run");
  CHECK(noarg_runs == 6, "a kernel without arguments ran %d times", noarg_runs);
}

/* ---- memory checks ---- */

static void test_memcpy_checks() {
  float host[64] = {0};
  void *dev;
  CUDA_OK(cudaMalloc(&dev, 256));
  struct {
    cudaError_t got;
    const char *text;
  } cases[8];
  int n = 0;
  std::string err = capture_stderr([&] {
    cases[n++] = {cudaMemcpy(host, host, 4, cudaMemcpyHostToDevice), "destination"};
    cases[n++] = {cudaMemcpy(dev, dev, 4, cudaMemcpyHostToDevice), "source"};
    cases[n++] = {cudaMemcpy(host, host, 4, cudaMemcpyDeviceToHost), "source"};
    cases[n++] = {cudaMemcpy(dev, host, 260, cudaMemcpyHostToDevice), "4 bytes past the end"};
    cases[n++] = {cudaMemcpy(host, (char *)dev + 128, 132, cudaMemcpyDeviceToHost), "past the end"};
    cases[n++] = {cudaMemcpyAsync(dev, host, 4, cudaMemcpyDeviceToDevice, 0), "source"};
    cases[n++] = {cudaMemset((char *)dev + 1, 0, 256), "1 bytes past the end"};
    cases[n++] = {cudaMemset(host, 0, 4), "not in any live device allocation"};
  });
  for (int i = 0; i < n; i++)
    CHECK(cases[i].got == cudaErrorInvalidValue && has(err, cases[i].text), "case %d: %s", i,
          cudaGetErrorName(cases[i].got));
  CHECK(has(err, "cudaMemcpy(HostToDevice): the destination") &&
            has(err, "is not device memory (a host pointer, or freed)"),
        "%s", err.c_str());
  CHECK(has(err, "cudaMemcpy(HostToDevice): the source") && has(err, "is device memory"), "%s",
        err.c_str());
  CHECK(cudaGetLastError() == cudaErrorInvalidValue && cudaGetLastError() == cudaSuccess,
        "copy errors are reported once, not sticky");
  CUDA_OK(cudaMemcpy(dev, host, 256, cudaMemcpyHostToDevice)); /* the whole range: fine */
  CUDA_OK(cudaMemcpy(host, dev, 0, cudaMemcpyDeviceToDevice)); /* nothing to copy */
  CUDA_OK(cudaMemcpy(host, dev, 4, cudaMemcpyDefault));
  void *inner = (char *)dev + 16;
  err = capture_stderr([&] {
    CHECK(cudaFree(host) == cudaErrorInvalidValue, "freeing a host pointer");
    CHECK(cudaFree(inner) == cudaErrorInvalidValue, "freeing inside an allocation");
  });
  CHECK(has(err, "not a live device allocation") && has(err, "not its start"), "%s", err.c_str());
  CUDA_OK(cudaFree(dev));
  err = capture_stderr([&] { CHECK(cudaFree(dev) == cudaErrorInvalidValue, "a double free"); });
  CHECK(has(err, "freed twice"), "%s", err.c_str());
  cudaGetLastError();
}

/* ---- stream capture ---- */

__global__ void add_scaled_kernel(float *y, const float *x, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] += a * x[i];
}

/* Work queued in a capture runs only when the graph is launched, every time, with the
 * arguments of capture time; a call CUDA refuses in a capture breaks it. */
static void test_stream_capture() {
  const int n = 64;
  float host[n], *x, *y;
  for (int i = 0; i < n; i++) host[i] = (float)i;
  CUDA_OK(cudaMalloc(&x, n * sizeof(float)));
  CUDA_OK(cudaMalloc(&y, n * sizeof(float)));
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cublasHandle_t h;
  CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS && cublasSetStream(h, s) == CUBLAS_STATUS_SUCCESS,
        "cuBLAS");
  CUDA_OK(cudaMemcpy(x, host, sizeof host, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemset(y, 0, sizeof host));
  float a = 2.0f, one = 1.0f, zero = 0.0f;
  CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  cudaStreamCaptureStatus st;
  CUDA_OK(cudaStreamIsCapturing(s, &st));
  CHECK(st == cudaStreamCaptureStatusActive, "status %d", st);
  FB_LAUNCH(add_scaled_kernel, 1, n, 0, s, y, x, a, n); /* y += 2x */
  a = 100.0f;                                           /* the graph keeps the value it was given */
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaMemcpyAsync(x, y, sizeof host, cudaMemcpyDeviceToDevice, s)); /* x = y */
  CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, x, CUDA_R_32F, 1, x, CUDA_R_32F, 1,
                     &zero, y, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
        "a product in the capture"); /* y[0] = x[0]^2 */
  one = 5.0f;
  cudaGraph_t graph;
  CUDA_OK(cudaStreamEndCapture(s, &graph));
  float got[n];
  CUDA_OK(cudaMemcpy(got, y, sizeof got, cudaMemcpyDeviceToHost));
  CHECK(got[3] == 0.0f, "captured work ran at capture: y[3] = %g", got[3]);
  cudaGraphExec_t exec;
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  for (int run = 1; run <= 2; run++) {
    CUDA_OK(cudaGraphLaunch(exec, s));
    CUDA_OK(cudaStreamSynchronize(s));
    CUDA_OK(cudaMemcpy(got, y, sizeof got, cudaMemcpyDeviceToHost));
    /* run 1: y = 2i, x = 2i; run 2: y = 2i + 2 * 2i = 6i, x = 6i; y[0] = x[0]^2 = 0 */
    float want = run == 1 ? 2.0f * 3 : 6.0f * 3;
    CHECK(got[3] == want, "run %d: y[3] = %g, want %g", run, got[3], want);
  }
  CUDA_OK(cudaGraphExecDestroy(exec));
  CUDA_OK(cudaGraphDestroy(graph));

  struct {
    const char *what;
    cudaError_t want;
  } refused[] = {{"cudaStreamSynchronize", cudaErrorStreamCaptureUnsupported},
                 {"cudaMemcpyAsync", cudaErrorStreamCaptureUnsupported},
                 {"cudaMalloc", cudaErrorStreamCaptureUnsupported},
                 {"legacy default stream", cudaErrorStreamCaptureImplicit}};
  for (const auto &r : refused) {
    cudaError_t got_e = cudaSuccess, end = cudaSuccess;
    cudaGraph_t g = graph;
    std::string err = capture_stderr([&] {
      CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      void *p = nullptr;
      if (r.what[0] == 'l')
        got_e = cudaMemset(y, 0, 4); /* on the legacy stream */
      else if (strcmp(r.what, "cudaMalloc") == 0)
        got_e = cudaMalloc(&p, 4);
      else if (strcmp(r.what, "cudaMemcpyAsync") == 0)
        got_e = cudaMemcpyAsync(got, y, 4, cudaMemcpyDeviceToHost, s);
      else
        got_e = cudaStreamSynchronize(s);
      FB_LAUNCH(add_scaled_kernel, 1, n, 0, s, y, x, a, n);
      CHECK(cudaGetLastError() == cudaErrorStreamCaptureInvalidated,
            "%s: work after it is refused too", r.what);
      end = cudaStreamEndCapture(s, &g);
    });
    CHECK(got_e == r.want, "%s in a capture: %s", r.what, cudaGetErrorName(got_e));
    CHECK(end == cudaErrorStreamCaptureInvalidated && g == nullptr, "%s: the capture ends %s",
          r.what, cudaGetErrorName(end));
    CHECK(has(err, r.what) && has(err, "invalidated"), "%s", err.c_str());
  }
  cudaGetLastError();
  CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS, "cuBLAS");
  CUDA_OK(cudaStreamDestroy(s));
  CUDA_OK(cudaFree(x));
  CUDA_OK(cudaFree(y));
}

static void test_memory_accounting() {
  size_t free0, total, free1;
  CUDA_OK(cudaMemGetInfo(&free0, &total));
  void *p;
  CUDA_OK(cudaMalloc(&p, 1000));
  CUDA_OK(cudaMemGetInfo(&free1, &total));
  CHECK(free0 - free1 == 1000, "%zu bytes taken for 1000", free0 - free1);
  CHECK((uintptr_t)p % 256 == 0, "%p is not 256-byte aligned", p);
  void *big;
  CHECK(cudaMalloc(&big, free1 + 1) == cudaErrorMemoryAllocation && big == nullptr, "over");
  CHECK(cudaGetLastError() == cudaErrorMemoryAllocation && cudaGetLastError() == cudaSuccess,
        "out of memory is reported once, not sticky");
  CUDA_OK(cudaFree(p));
  CUDA_OK(cudaMemGetInfo(&free1, &total));
  CHECK(free1 == free0, "%zu free after the free, %zu before", free1, free0);
}

/* ---- cuBLAS ---- */

static float bf16_round(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

/* One column-major C = alpha op(A) op(B) + beta C on the device against a double reference. */
static double gemm_error(cublasHandle_t h, bool ta, bool tb, cudaDataType_t type, float beta) {
  const int m = 37, n = 23, k = 19, pad = 3;
  int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
  int lda = ar + pad, ldb = br + pad, ldc = m + pad;
  std::vector<float> A((size_t)lda * ac), B((size_t)ldb * bc), C((size_t)ldc * n);
  unsigned s = 12345;
  auto rnd = [&] {
    s = s * 1664525u + 1013904223u;
    return (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
  };
  for (float &x : A) x = bf16_round(rnd()); /* exact in bf16, so both types see the same A */
  for (float &x : B) x = bf16_round(rnd());
  for (float &x : C) x = beta == 0.0f ? NAN : rnd(); /* beta 0 must not read C */
  const void *dA, *dB;
  dbuf<float> fA(A), fB(B), dC(C);
  std::vector<__nv_bfloat16> hA(A.size()), hB(B.size());
  for (size_t i = 0; i < A.size(); i++) hA[i] = __float2bfloat16_rn(A[i]);
  for (size_t i = 0; i < B.size(); i++) hB[i] = __float2bfloat16_rn(B[i]);
  dbuf<__nv_bfloat16> bA(hA), bB(hB);
  dA = type == CUDA_R_16BF ? (const void *)bA.p : fA.p;
  dB = type == CUDA_R_16BF ? (const void *)bB.p : fB.p;
  float alpha = 0.75f;
  cublasStatus_t st = cublasGemmEx(
      h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, dA, type,
      lda, dB, type, ldb, &beta, dC.p, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) return INFINITY;
  std::vector<float> got = dC.get();
  double worst = 0.0;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      double acc = 0.0;
      for (int p = 0; p < k; p++) {
        double a = ta ? A[(size_t)i * lda + p] : A[(size_t)p * lda + i];
        double b = tb ? B[(size_t)p * ldb + j] : B[(size_t)j * ldb + p];
        acc += a * b;
      }
      double want = alpha * acc + (beta == 0.0f ? 0.0 : beta * (double)C[(size_t)j * ldc + i]);
      double e = fabs(got[(size_t)j * ldc + i] - want);
      if (!(e <= worst)) worst = e; /* NaN counts as the worst */
    }
  for (int j = 0; j < n; j++) /* the padding rows of C are never touched */
    for (int i = m; i < ldc; i++) {
      float c = got[(size_t)j * ldc + i], was = C[(size_t)j * ldc + i];
      if (memcmp(&c, &was, 4) != 0) return INFINITY;
    }
  return worst;
}

static void test_cublas_gemm() {
  cublasHandle_t h;
  CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
  for (int type = 0; type < 2; type++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (float beta : {-0.5f, 0.0f}) {
          cudaDataType_t t = type ? CUDA_R_16BF : CUDA_R_32F;
          double e = gemm_error(h, ta, tb, t, beta);
          CHECK(e < 1e-5, "%s op(A)=%c op(B)=%c beta %g: max error %g", type ? "bf16" : "fp32",
                ta ? 'T' : 'N', tb ? 'T' : 'N', beta, e);
        }

  /* A[m,k] stored column-major with lda = m, for m = 8, k = 4: the mistakes a caller makes */
  const int m = 8, n = 6, k = 4;
  dbuf<float> A(m * k), B(k * n), C(m * n);
  float one = 1.0f, zero = 0.0f, host[64];
  auto gemm = [&](cublasOperation_t ta, cublasOperation_t tb, int mm, int nn, int kk, int lda,
                  int ldb, int ldc, const void *a = nullptr, cudaDataType_t at = CUDA_R_32F,
                  cudaDataType_t bt = CUDA_R_32F, cudaDataType_t ct = CUDA_R_32F,
                  const float *alpha = nullptr) {
    return cublasGemmEx(h, ta, tb, mm, nn, kk, alpha ? alpha : &one, a ? a : A.p, at, lda, B.p, bt,
                        ldb, &zero, C.p, ct, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  const cublasOperation_t N = CUBLAS_OP_N, T = CUBLAS_OP_T;
  std::string err = capture_stderr([&] {
    CHECK(gemm(N, N, m, n, k, m, k, m) == CUBLAS_STATUS_SUCCESS, "the right call");
    CHECK(gemm(N, N, m, n, k, m - 1, k, m) == CUBLAS_STATUS_INVALID_VALUE, "lda < m");
    CHECK(gemm(N, N, m, n, k, m, k - 1, m) == CUBLAS_STATUS_INVALID_VALUE, "ldb < k");
    CHECK(gemm(N, N, m, n, k, m, k, m - 1) == CUBLAS_STATUS_INVALID_VALUE, "ldc < m");
    CHECK(gemm(N, N, -1, n, k, m, k, m) == CUBLAS_STATUS_INVALID_VALUE, "m < 0");
    CHECK(gemm(N, T, m, n, k, m, k, m) == CUBLAS_STATUS_INVALID_VALUE, "B^T needs ldb >= n");
    /* A transposed by mistake: lda = m passes (m >= k), but op(A)^T spans m columns of m */
    CHECK(gemm(T, N, m, n, k, m, k, m) == CUBLAS_STATUS_EXECUTION_FAILED, "A's extent");
    /* a host operand, an unsupported type pair, a device alpha */
    CHECK(gemm(N, N, m, n, k, m, k, m, host) == CUBLAS_STATUS_EXECUTION_FAILED, "host A");
    CHECK(gemm(N, N, m, n, k, m, k, m, nullptr, CUDA_R_32F, CUDA_R_16BF) ==
              CUBLAS_STATUS_NOT_SUPPORTED,
          "fp32 x bf16");
    CHECK(gemm(N, N, m, n, k, m, k, m, nullptr, CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16BF) ==
              CUBLAS_STATUS_NOT_SUPPORTED,
          "bf16 C");
    CHECK(gemm(N, N, m, n, k, m, k, m, nullptr, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, C.p) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "alpha in device memory");
  });
  CHECK(has(err, "lda 7 < max(1, m) = 8") && has(err, "ldb 3 < max(1, k) = 4") &&
            has(err, "ldc 7 < max(1, m) = 8") && has(err, "ldb 4 < max(1, n) = 6"),
        "%s", err.c_str());
  CHECK(has(err, "cublasGemmEx: A (4 x 8 fp32, ld 8, 240 bytes):") &&
            has(err, "runs 112 bytes past the end of its allocation (") && has(err, ", 128 bytes)"),
        "%s", err.c_str());
  CHECK(has(err, "is not in any live device allocation") && has(err, "only (bf16, bf16 -> fp32)") &&
            has(err, "pointer mode is host"),
        "%s", err.c_str());
  CHECK(gemm(N, N, 0, n, k, m, k, m) == CUBLAS_STATUS_SUCCESS, "m = 0 is nothing to do");
  CHECK(
      strcmp(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE") == 0,
      "status name");
  CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS, "cublasDestroy");
  CHECK(gemm(N, N, m, n, k, m, k, m) == CUBLAS_STATUS_NOT_INITIALIZED, "a destroyed handle");
  CHECK(cublasDestroy(h) == CUBLAS_STATUS_NOT_INITIALIZED, "destroyed twice");
}

/* cuBLASLt's bias epilogue: D = alpha op(A) op(B) + beta D + bias[row], the same numbers as
 * cublasGemmEx and the bias after it; and what the emulator refuses, refused. */
static void test_cublaslt_bias() {
  const int m = 11, n = 7, k = 5, ldd = m + 2; /* A stored k x m (transposed), B k x n */
  std::vector<float> hA((size_t)k * m), hB((size_t)k * n), hD((size_t)ldd * n), bias(m);
  for (size_t i = 0; i < hA.size(); i++) hA[i] = bf16_round(0.1f * (float)(i % 13) - 0.6f);
  for (size_t i = 0; i < hB.size(); i++) hB[i] = bf16_round(0.2f * (float)(i % 7) - 0.5f);
  for (size_t i = 0; i < hD.size(); i++) hD[i] = 0.01f * (float)i;
  for (int i = 0; i < m; i++) bias[i] = 1.0f + i;
  dbuf<float> A(hA), B(hB), D(hD), ref(hD), dbias(bias);
  float alpha = 0.5f, beta = 0.25f;
  cublasHandle_t h;
  CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
  CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A.p, CUDA_R_32F, k, B.p,
                     CUDA_R_32F, k, &beta, ref.p, CUDA_R_32F, ldd, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
        "the reference product");
  cublasLtHandle_t lt;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, ld, lother;
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CHECK(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS, "cublasLtCreate");
  CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS,
        "a descriptor");
  int32_t t = CUBLAS_OP_T;
  uint32_t with_bias = CUBLASLT_EPILOGUE_BIAS, relu = 2;
  const float *bp = dbias.p;
  CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t) == 0 &&
            cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &with_bias,
                                           sizeof with_bias) == 0,
        "transpose and epilogue");
  CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, k, m, k) == 0 &&
            cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, k, n, k) == 0 &&
            cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, m, n, ldd) == 0 &&
            cublasLtMatrixLayoutCreate(&lother, CUDA_R_32F, m + 1, n, ldd) == 0,
        "layouts");
  auto matmul = [&](void *C, cublasLtMatrixLayout_t lc, const cublasLtMatmulAlgo_t *algo) {
    return cublasLtMatmul(lt, desc, &alpha, A.p, la, B.p, lb, &beta, C, lc, D.p, ld, algo, nullptr,
                          0, s);
  };
  cublasLtMatmulAlgo_t algo = {};
  std::string err = capture_stderr([&] {
    CHECK(matmul(D.p, ld, nullptr) == CUBLAS_STATUS_INVALID_VALUE, "the bias with no pointer");
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &relu, 4) ==
              CUBLAS_STATUS_NOT_SUPPORTED,
          "an epilogue it has not");
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, 8) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "an attribute of the wrong size");
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp) ==
              CUBLAS_STATUS_SUCCESS,
          "the bias pointer");
    CHECK(matmul(ref.p, ld, nullptr) == CUBLAS_STATUS_NOT_SUPPORTED, "C != D");
    CHECK(matmul(D.p, ld, &algo) == CUBLAS_STATUS_NOT_SUPPORTED, "an explicit algo");
    CHECK(cublasLtMatmul(lt, desc, &alpha, A.p, la, B.p, lb, &beta, D.p, lother, D.p, lother,
                         nullptr, nullptr, 0, s) == CUBLAS_STATUS_INVALID_VALUE,
          "shapes that do not chain");
  });
  CHECK(has(err, "the bias epilogue with no bias pointer") && has(err, "only DEFAULT and BIAS") &&
            has(err, "only in place") && has(err, "the emulator has none") &&
            has(err, "do not chain"),
        "%s", err.c_str());
  CHECK(matmul(D.p, ld, nullptr) == CUBLAS_STATUS_SUCCESS, "the bias epilogue");
  std::vector<float> got = D.get(), want = ref.get();
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) want[(size_t)j * ldd + i] += bias[i];
  CHECK(memcmp(got.data(), want.data(), got.size() * 4) == 0,
        "the epilogue is the product, then the bias (padding rows untouched)");
  for (cublasLtMatrixLayout_t l : {la, lb, ld, lother})
    CHECK(cublasLtMatrixLayoutDestroy(l) == CUBLAS_STATUS_SUCCESS, "layout destroyed");
  CHECK(cublasLtMatmulDescDestroy(desc) == CUBLAS_STATUS_SUCCESS, "descriptor destroyed");
  CHECK(cublasLtDestroy(lt) == CUBLAS_STATUS_SUCCESS && cublasLtDestroy(lt) != 0, "once");
  CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS, "cublasDestroy");
  CUDA_OK(cudaStreamDestroy(s));
}

/* ---- bf16 ---- */

__global__ void bf16_kernel(__nv_bfloat16 *out, const float *in, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(in[i]);
}

static float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static void test_bf16() {
  struct {
    float in;
    unsigned short want;
  } cases[] = {
      {1.0f, 0x3f80},
      {bits_to_float(0x3f808000), 0x3f80}, /* halfway, even below: down */
      {bits_to_float(0x3f818000), 0x3f82}, /* halfway, odd below: up */
      {bits_to_float(0x3f808001), 0x3f81}, /* above halfway: up */
      {bits_to_float(0x3f807fff), 0x3f80}, /* below halfway: down */
      {-2.5f, 0xc020},
      {-0.0f, 0x8000},
      {INFINITY, 0x7f80},
      {-INFINITY, 0xff80},
      {bits_to_float(0x7f7fffff), 0x7f80}, /* FLT_MAX rounds up to infinity */
      {bits_to_float(0x00010000), 0x0001}, /* a subnormal */
      {NAN, 0x7fff},
      {bits_to_float(0xffc00001), 0x7fff}, /* any NaN: the canonical NaN */
      {bits_to_float(0x7f800001), 0x7fff}, /* a signalling NaN that truncation would make inf */
  };
  int n = sizeof cases / sizeof cases[0];
  std::vector<float> in(n);
  for (int i = 0; i < n; i++) in[i] = cases[i].in;
  dbuf<float> din(in);
  dbuf<__nv_bfloat16> dout(n);
  FB_LAUNCH(bf16_kernel, 1, 32, 0, 0, dout.p, din.p, n);
  std::vector<__nv_bfloat16> got = dout.get();
  for (int i = 0; i < n; i++) {
    unsigned short h = __bfloat16_as_ushort(got[i]);
    CHECK(h == cases[i].want, "case %d (0x%08x): 0x%04x, want 0x%04x", i,
          (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(cases[i].in)), h, cases[i].want);
  }
  CHECK(isnan(__bfloat162float(__float2bfloat16_rn(NAN))), "NaN stays NaN");
  CHECK(__bfloat162float(__ushort_as_bfloat16(0x3f81)) == 1.0078125f, "widening is exact");
}

/* ---- thread orders (children: the order is read once per process) ---- */

/* seq[k] = the global id of the k-th thread to run; again after a barrier; last = the last
 * thread to write. All three depend on the order; a correct kernel must not. */
__global__ void order_kernel(int *seq, int *count, int *seq2, int *count2, int *last) {
  int id = blockIdx.x * blockDim.x + threadIdx.x;
  seq[atomicAdd(count, 1)] = id;
  __syncthreads();
  seq2[atomicAdd(count2, 1)] = id;
  *last = id;
}

static int child_order() {
  const int blocks = 4, threads = 64, n = blocks * threads;
  dbuf<int> seq(n), count(std::vector<int>{0}), seq2(n), count2(std::vector<int>{0}), last(1);
  FB_LAUNCH(order_kernel, blocks, threads, 0, 0, seq.p, count.p, seq2.p, count2.p, last.p);
  if (cudaGetLastError() != cudaSuccess) return 1;
  std::vector<int> a = seq.get(), b = seq2.get();
  printf("seq=");
  for (int i = 0; i < n; i++) printf("%d,", a[i]);
  printf("\nseq2=");
  for (int i = 0; i < n; i++) printf("%d,", b[i]);
  printf("\nlast=%d\n", last.get()[0]);
  return 0;
}

static std::vector<int> parse_list(const std::string &out, const char *key) {
  std::vector<int> v;
  size_t at = out.find(key);
  if (at == std::string::npos) return v;
  at += strlen(key);
  while (at < out.size() && out[at] != '\n') {
    v.push_back(atoi(out.c_str() + at));
    at = out.find(',', at) + 1;
  }
  return v;
}

static void test_thread_orders() {
  const int n = 256;
  child_result fwd = run_child("order"), rev = run_child("order", {"FB_EMU_ORDER=reverse"});
  child_result sh1 = run_child("order", {"FB_EMU_ORDER=shuffle:1"});
  child_result sh1b = run_child("order", {"FB_EMU_ORDER=shuffle:1"});
  child_result sh2 = run_child("order", {"FB_EMU_ORDER=shuffle:2"});
  for (const child_result *r : {&fwd, &rev, &sh1, &sh1b, &sh2})
    CHECK(r->exited_ok(), "child: %s", r->out.c_str());
  std::vector<int> f = parse_list(fwd.out, "seq="), r = parse_list(rev.out, "seq=");
  std::vector<int> s1 = parse_list(sh1.out, "seq="), s1b = parse_list(sh1b.out, "seq=");
  std::vector<int> s2 = parse_list(sh2.out, "seq=");
  if (f.size() != (size_t)n || r.size() != (size_t)n || s1.size() != (size_t)n ||
      s2.size() != (size_t)n) {
    CHECK(false, "incomplete sequences: %s", fwd.out.c_str());
    return;
  }
  bool f_ok = true, r_ok = true, blocks_whole = true;
  for (int i = 0; i < n; i++) {
    f_ok &= f[i] == i;
    r_ok &= r[i] == n - 1 - i;
    blocks_whole &= s1[i] / 64 == s1[i / 64 * 64] / 64; /* blocks run one at a time */
  }
  CHECK(f_ok, "forward runs threads (and blocks) in index order");
  CHECK(r_ok, "reverse runs them backwards");
  CHECK(s1 != f && s1 != r && blocks_whole, "shuffle:1 is another order, blocks kept whole");
  CHECK(s1 == s1b, "shuffle:1 is the same order every time");
  CHECK(s1 != s2, "shuffle:2 differs from shuffle:1");
  CHECK(parse_list(fwd.out, "seq2=") == f && parse_list(rev.out, "seq2=") == r,
        "a barrier releases threads in the same order");
  CHECK(has(fwd.out, "last=255") && has(rev.out, "last=0"),
        "the last writer depends on the order: %s / %s", fwd.out.c_str(), rev.out.c_str());
}

/* ---- faults (children) ---- */

__global__ void divergent_kernel(int *out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void deadlock_kernel(float *out) {
  float v = threadIdx.x;
  if (threadIdx.x == 0)
    __syncthreads(); /* lane 0 waits here, its warp at the shuffle: nobody can move */
  else
    v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

__global__ void partial_warp_kernel(float *out) { /* 48 threads: warp 1 has 16 lanes */
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1);
}

__global__ void exited_lane_kernel(float *out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, (float)threadIdx.x, 0);
}

__global__ void unnamed_source_kernel(float *out) {
  unsigned lane = threadIdx.x & 31;
  if (lane < 16) out[lane] = __shfl_sync(0x0000ffffu, (float)lane, 20); /* 20 % 32: outside */
}

__global__ void mismatch_kernel(float *out) {
  float v = threadIdx.x;
  if (threadIdx.x & 1)
    v = __shfl_down_sync(0xffffffffu, v, 1);
  else
    v = __shfl_up_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

__global__ void own_lane_kernel(float *out) { /* lane 3 leaves itself out of the mask */
  out[threadIdx.x] = __shfl_sync(threadIdx.x == 3 ? 0x7u : 0xffffffffu, 1.0f, 0);
}

__global__ void width_kernel(float *out) {
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0f, 1, 12);
}

/* lane 0 waits with lanes {0, 1}, lane 1 arrives with {1} alone: the groups overlap */
__global__ void overlap_kernel(float *out) {
  float v = threadIdx.x;
  if (threadIdx.x == 0) v = __shfl_sync(0x3u, v, 1);
  if (threadIdx.x == 1) v = __shfl_sync(0x2u, v, 1);
  out[threadIdx.x] = v;
}

__global__ void scale_arg_kernel(float *x, const float *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= y[i];
}

/* After a fault every runtime call fails with the sticky error; print what they return.
 * dev is a live allocation, which cudaFree releases all the same. */
static void print_sticky(void *dev) {
  void *p;
  float host[4];
  cudaError_t last = cudaGetLastError(), again = cudaGetLastError();
  printf("last=%s again=%s\n", cudaGetErrorName(last), cudaGetErrorName(again));
  printf("sync=%s\n", cudaGetErrorName(cudaDeviceSynchronize()));
  printf("malloc=%s\n", cudaGetErrorName(cudaMalloc(&p, 16)));
  printf("memcpy=%s\n", cudaGetErrorName(cudaMemcpy(host, host, 4, cudaMemcpyHostToHost)));
  FB_LAUNCH(flag_kernel, 1, 1, 0, 0, nullptr);
  printf("launch=%s\n", cudaGetErrorName(cudaGetLastError()));
  printf("free=%s\n", cudaGetErrorName(cudaFree(dev)));
}

/* Each faulty kernel once; the buffer is freed after the fault (the call fails, the memory
 * goes), so the leak check of an ASan build passes. */
static int child_divergent() {
  dbuf<int> out(64);
  FB_LAUNCH(divergent_kernel, 1, 32, 0, 0, out.p);
  print_sticky(out.p);
  return 0;
}

static int child_deadlock() {
  dbuf<float> out(32);
  FB_LAUNCH(deadlock_kernel, 1, 32, 0, 0, out.p);
  print_sticky(out.p);
  return 0;
}

static int child_partial_warp() {
  dbuf<float> out(48);
  FB_LAUNCH(partial_warp_kernel, 1, 48, 0, 0, out.p);
  print_sticky(out.p);
  return 0;
}

static int child_exited_lane() {
  dbuf<float> out(32);
  FB_LAUNCH(exited_lane_kernel, 1, 32, 0, 0, out.p);
  print_sticky(out.p);
  return 0;
}

static int child_unnamed_source() {
  dbuf<float> out(32);
  FB_LAUNCH(unnamed_source_kernel, 1, 32, 0, 0, out.p);
  print_sticky(out.p);
  return 0;
}

static int child_mismatch() {
  dbuf<float> out(32);
  FB_LAUNCH(mismatch_kernel, 1, 32, 0, 0, out.p);
  print_sticky(out.p);
  return 0;
}

static int child_own_lane() {
  dbuf<float> out(32);
  FB_LAUNCH(own_lane_kernel, 1, 32, 0, 0, out.p);
  print_sticky(out.p);
  return 0;
}

static int child_width() {
  dbuf<float> out(32);
  FB_LAUNCH(width_kernel, 1, 32, 0, 0, out.p);
  print_sticky(out.p);
  return 0;
}

static int child_overlap() {
  dbuf<float> out(32);
  FB_LAUNCH(overlap_kernel, 1, 32, 0, 0, out.p);
  print_sticky(out.p);
  return 0;
}

static int child_host_pointer() {
  float host[256];
  dbuf<float> x(256);
  FB_LAUNCH(scale_arg_kernel, 1, 256, 0, 0, x.p, host, 256);
  print_sticky(x.p);
  return 0;
}

static int child_freed_pointer() {
  float *y;
  dbuf<float> x(256);
  if (cudaMalloc(&y, 256 * sizeof(float)) || cudaFree(y)) return 1;
  FB_LAUNCH(scale_arg_kernel, 1, 256, 0, 0, x.p, y, 256);
  print_sticky(x.p);
  return 0;
}

static void expect_fault(const char *child, const char *line_start, const char *what,
                         const char *sticky, std::vector<std::string> env = {}) {
  child_result r = run_child(child, env);
  CHECK(r.exited_ok(), "%s: status %d: %s", child, r.status, r.out.c_str());
  CHECK(has(r.out, line_start) && has(r.out, what), "%s: %s", child, r.out.c_str());
  std::string last = std::string("last=") + sticky + " again=" + sticky;
  CHECK(has(r.out, last.c_str()), "%s: the fault is not sticky: %s", child, r.out.c_str());
  for (const char *call : {"sync=", "malloc=", "memcpy=", "launch=", "free="}) {
    std::string want = std::string(call) + sticky;
    CHECK(has(r.out, want.c_str()), "%s: %s: %s", child, want.c_str(), r.out.c_str());
  }
  size_t faults = 0;
  for (size_t at = 0; (at = r.out.find("cuda-emu: fault in", at)) != std::string::npos; at++)
    faults++;
  CHECK(faults == 1, "%s: %zu fault lines", child, faults);
}

static void test_faults() {
  expect_fault("divergent", "cuda-emu: fault in divergent_kernel block (0,0,0) thread (16,0,0): ",
               "divergent __syncthreads(): thread (0,0,0) waits at another one, ",
               "cudaErrorLaunchFailure");
  child_result r = run_child("divergent");
  CHECK(count_lines_named(r.out) == 2, "both barriers' lines named: %s", r.out.c_str());
  expect_fault("deadlock", "cuda-emu: fault in deadlock_kernel block (0,0,0) thread (1,0,0): ",
               "deadlock: no thread can run; waiting: 1 at __syncthreads() ",
               "cudaErrorLaunchFailure");
  r = run_child("deadlock");
  CHECK(has(r.out, ", 31 at __shfl_xor_sync(0xffffffff) "), "%s", r.out.c_str());
  expect_fault("partial_warp",
               "cuda-emu: fault in partial_warp_kernel block (0,0,0) thread (32,0,0): ",
               "__shfl_xor_sync mask 0xffffffff names lane 16, past the block's 48 threads "
               "(partial warp) at ",
               "cudaErrorLaunchFailure");
  expect_fault("exited_lane",
               "cuda-emu: fault in exited_lane_kernel block (0,0,0) thread (0,0,0): ",
               "__shfl_sync with mask 0xffffffff waits for lane 5, which has exited at ",
               "cudaErrorLaunchFailure");
  expect_fault("unnamed_source",
               "cuda-emu: fault in unnamed_source_kernel block (0,0,0) thread (0,0,0): ",
               "__shfl_sync reads lane 20, which is not in its mask 0x0000ffff (undefined value)",
               "cudaErrorLaunchFailure");
  expect_fault("mismatch", "cuda-emu: fault in mismatch_kernel block (0,0,0) thread (1,0,0): ",
               "__shfl_down_sync with mask 0xffffffff meets lane 0 at __shfl_up_sync",
               "cudaErrorLaunchFailure");
  expect_fault("own_lane", "cuda-emu: fault in own_lane_kernel block (0,0,0) thread (3,0,0): ",
               "__shfl_sync mask 0x00000007 does not name the calling lane 3",
               "cudaErrorLaunchFailure");
  expect_fault("width", "cuda-emu: fault in width_kernel block (0,0,0) thread (0,0,0): ",
               "__shfl_down_sync width 12 is not a power of two up to 32",
               "cudaErrorLaunchFailure");
  expect_fault("overlap", "cuda-emu: fault in overlap_kernel block (0,0,0) thread (1,0,0): ",
               "__shfl_sync with mask 0x00000002 meets lane 0 at __shfl_sync with mask 0x00000003",
               "cudaErrorLaunchFailure");
  expect_fault("host_pointer", "cuda-emu: fault in scale_arg_kernel block (0,0,0) thread (0,0,0): ",
               "argument 2 (0x", "cudaErrorIllegalAddress");
  r = run_child("host_pointer");
  CHECK(has(r.out, ") points to no live device allocation (a host pointer, or freed) at ") &&
            has(r.out, "selftest.cu:"),
        "%s", r.out.c_str());
  expect_fault("freed_pointer",
               "cuda-emu: fault in scale_arg_kernel block (0,0,0) thread (0,0,0): ",
               "points to no live device allocation", "cudaErrorIllegalAddress");
  expect_fault("fault_at", "cuda-emu: fault in flag_kernel block (0,0,0) thread (0,0,0): ",
               "injected fault (FB_EMU_FAULT_AT=2) at ", "cudaErrorLaunchFailure",
               {"FB_EMU_FAULT_AT=2"});
}

static int child_fault_at() { /* run under FB_EMU_FAULT_AT=2 */
  dbuf<int> flag(std::vector<int>{0});
  FB_LAUNCH(flag_kernel, 1, 1, 0, 0, flag.p);
  if (cudaGetLastError() != cudaSuccess || flag.get()[0] != 1) return 1;
  FB_LAUNCH(flag_kernel, 1, 1, 0, 0, flag.p);
  print_sticky(flag.p);
  return 0;
}

/* ---- WMMA (mma.h) ---- */

namespace wmma = nvcuda::wmma;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc_frag;

/* D[M,N] (column-major, ld M) = A[M,K] B[K,N] + C[M,N] (row-major, ld N) with 16 x 16 tiles,
 * one warp per output tile in turn. A is row-major with rows of lda; B column-major with
 * columns of ldb (so B^T is stored row by row), both bf16; a second pass goes through shared
 * memory with the other layouts (A column-major, B row-major) and must give the same D. */
__global__ void wmma_gemm_kernel(float *D, const float *C, const __nv_bfloat16 *A,
                                 const __nv_bfloat16 *B, int M, int N, int K, int lda, int ldb,
                                 int via_shared) {
  constexpr int SM = 48, SN = 64, SK = 32, PAD = 8; /* the sizes this test uses */
  __shared__ __align__(32) __nv_bfloat16 at[SK][SM + PAD], bt[SK][SN + PAD];
  int warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  if (via_shared) { /* A^T row by row is A column-major; B row by row */
    for (int e = threadIdx.x; e < M * K; e += blockDim.x) at[e % K][e / K] = A[e / K * lda + e % K];
    for (int e = threadIdx.x; e < K * N; e += blockDim.x) bt[e % K][e / K] = B[e / K * ldb + e % K];
    __syncthreads();
  }
  for (int t = warp; t < (M / 16) * (N / 16); t += nwarps) {
    int tm = t / (N / 16) * 16, tn = t % (N / 16) * 16;
    acc_frag acc;
    wmma::load_matrix_sync(acc, C + tm * N + tn, N, wmma::mem_row_major);
    for (int k = 0; k < K; k += 16) {
      if (via_shared) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
        wmma::load_matrix_sync(a, &at[k][tm], SM + PAD);
        wmma::load_matrix_sync(b, &bt[k][tn], SN + PAD);
        wmma::mma_sync(acc, a, b, acc);
      } else {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
        wmma::load_matrix_sync(a, A + tm * lda + k, lda);
        wmma::load_matrix_sync(b, B + tn * ldb + k, ldb);
        wmma::mma_sync(acc, a, b, acc);
      }
    }
    wmma::store_matrix_sync(D + tn * M + tm, acc, M, wmma::mem_col_major);
  }
}

static void test_wmma_gemm() {
  const int M = 48, N = 64, K = 32, lda = 40, ldb = 40;
  std::vector<__nv_bfloat16> a((size_t)M * lda), b((size_t)N * ldb);
  std::vector<float> c((size_t)M * N);
  srand(7);
  auto rnd = [] { return (float)rand() / RAND_MAX * 2 - 1; };
  for (auto &x : a) x = __float2bfloat16_rn(rnd());
  for (auto &x : b) x = __float2bfloat16_rn(rnd());
  for (auto &x : c) x = rnd();
  dbuf<__nv_bfloat16> da(a), db(b);
  dbuf<float> dc(c), dd((size_t)M * N);
  for (int via_shared = 0; via_shared < 2; via_shared++) {
    FB_LAUNCH(wmma_gemm_kernel, 1, 128, 0, 0, dd.p, dc.p, da.p, db.p, M, N, K, lda, ldb,
              via_shared);
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> d = dd.get();
    double worst = 0;
    for (int m = 0; m < M; m++)
      for (int n = 0; n < N; n++) {
        double ref = c[m * N + n];
        for (int k = 0; k < K; k++)
          ref += (double)__bfloat162float(a[m * lda + k]) * __bfloat162float(b[n * ldb + k]);
        worst = fmax(worst, fabs(d[n * M + m] - ref));
      }
    CHECK(worst < 1e-5, "WMMA GEMM (%s): worst error %.3e", via_shared ? "shared" : "global",
          worst);
  }
}

/* out (16 x 16) = the tile the block's 64 threads write into shared memory, as warp 0 loads it
 * after a first WMMA call of its own. Without the second barrier warp 0 goes on from that call
 * before warp 1 has written its half (all 64 threads were ready to run since the first
 * barrier): the emulator must show that as wrong output. */
__global__ void wmma_barrier_kernel(float *out, int barrier) {
  __shared__ __align__(32) float tile[16][16];
  __syncthreads();
  for (int e = threadIdx.x; e < 256; e += blockDim.x) tile[e / 16][e % 16] = (float)e;
  if (barrier) __syncthreads();
  if (threadIdx.x / 32 == 0) {
    acc_frag f;
    wmma::fill_fragment(f, 0.0f);
    wmma::store_matrix_sync(out, f, 16, wmma::mem_row_major);
    wmma::load_matrix_sync(f, &tile[0][0], 16, wmma::mem_row_major);
    wmma::store_matrix_sync(out, f, 16, wmma::mem_row_major);
  }
}

static void test_wmma_barrier() {
  dbuf<float> out(256);
  int wrong[2] = {0, 0};
  for (int barrier = 0; barrier < 2; barrier++) { /* without first: shared memory starts at 0 */
    FB_LAUNCH(wmma_barrier_kernel, 1, 64, 0, 0, out.p, barrier);
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> o = out.get();
    for (int e = 0; e < 256; e++) wrong[barrier] += o[e] != (float)e;
  }
  CHECK(wrong[1] == 0 && wrong[0] == 128, "wrong elements: %d with the barrier, %d without",
        wrong[1], wrong[0]);
}

/* Which tile element each fragment slot holds: x[i] = lane * 8 + i, stored row-major. */
__global__ void wmma_layout_kernel(float *out) {
  acc_frag f;
  for (int i = 0; i < f.num_elements; i++) f.x[i] = (float)(threadIdx.x * 8 + i);
  wmma::store_matrix_sync(out, f, 16, wmma::mem_row_major);
}

static int child_wmma_layout() {
  dbuf<float> out(256);
  FB_LAUNCH(wmma_layout_kernel, 1, 32, 0, 0, out.p);
  if (cudaDeviceSynchronize() != cudaSuccess) return 1;
  printf("slots=");
  for (float v : out.get()) printf("%d,", (int)v);
  printf("\n");
  return 0;
}

/* The slots are a permutation of the tile that changes with FB_EMU_ORDER: a kernel that
 * assumes one (the hardware's, or the emulator's) gets other numbers under another order. */
static void test_wmma_layout() {
  child_result fwd = run_child("wmma_layout");
  child_result rev = run_child("wmma_layout", {"FB_EMU_ORDER=reverse"});
  child_result sh = run_child("wmma_layout", {"FB_EMU_ORDER=shuffle:3"});
  std::vector<int> f = parse_list(fwd.out, "slots="), r = parse_list(rev.out, "slots=");
  std::vector<int> s = parse_list(sh.out, "slots=");
  for (const std::vector<int> *v : {&f, &r, &s}) {
    std::vector<int> sorted = *v;
    std::sort(sorted.begin(), sorted.end());
    bool perm = sorted.size() == 256;
    for (int i = 0; perm && i < 256; i++) perm = sorted[i] == i;
    CHECK(perm, "the 32 lanes' 8 slots fill the tile once: %s", fwd.out.c_str());
  }
  bool identity = true;
  for (int i = 0; i < (int)f.size(); i++) identity &= f[i] == i;
  CHECK(!identity, "slot lane * 8 + i is not simply element lane * 8 + i");
  CHECK(f != r && f != s && r != s, "the layout changes with FB_EMU_ORDER");
}

/* Faulty uses, one per child; each operand check and the warp-collective rule. */
__global__ void wmma_use_kernel(float *out, const __nv_bfloat16 *in, int bug) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
  unsigned lane = threadIdx.x % 32;
  const __nv_bfloat16 *p = in;
  unsigned ldm = 16;
  if (bug == 1 && lane == 5) return;  /* a lane missing */
  if (bug == 2) p += (lane & 1) * 16; /* lanes pointing at different tiles */
  if (bug == 3) ldm = 20;             /* not 16 bytes' worth of bf16 */
  if (bug == 4) p += 8;               /* 16 bytes in: not 32-byte aligned */
  if (bug == 5) ldm = 32;             /* the 16th row runs past the 16 x 16 buffer */
  if (bug == 6 && lane >= 16) {       /* half the warp stores while the rest loads */
    acc_frag c;
    wmma::fill_fragment(c, 0.0f);
    wmma::store_matrix_sync(out, c, 16, wmma::mem_row_major);
    return;
  }
  wmma::load_matrix_sync(a, p, ldm);
  out[threadIdx.x] = __bfloat162float(a.x[0]);
}

static int wmma_use(int bug, int threads) {
  dbuf<float> out(256);
  dbuf<__nv_bfloat16> in(256 + 32);
  FB_LAUNCH(wmma_use_kernel, 1, threads, 0, 0, out.p, in.p, bug);
  print_sticky(out.p);
  return 0;
}

static int child_wmma_missing_lane() { return wmma_use(1, 32); }
static int child_wmma_arguments() { return wmma_use(2, 32); }
static int child_wmma_ldm() { return wmma_use(3, 32); }
static int child_wmma_alignment() { return wmma_use(4, 32); }
static int child_wmma_bounds() { return wmma_use(5, 32); }
static int child_wmma_calls() { return wmma_use(6, 32); }
static int child_wmma_partial_warp() { return wmma_use(0, 48); }

static void test_wmma_faults() {
  const char *at = "cuda-emu: fault in wmma_use_kernel block (0,0,0) thread ";
  expect_fault("wmma_missing_lane", at,
               "wmma::*_sync with mask 0xffffffff waits for lane 5, which has exited",
               "cudaErrorLaunchFailure");
  expect_fault("wmma_arguments", at, "wmma::load_matrix_sync with pointer 0x",
               "cudaErrorLaunchFailure");
  child_result r = run_child("wmma_arguments");
  CHECK(has(r.out, "ldm 16, row-major, where lane 0 has 0x") &&
            has(r.out, "every lane must pass the same arguments"),
        "%s", r.out.c_str());
  expect_fault("wmma_ldm", at,
               "wmma::load_matrix_sync: ldm 20 is not a multiple of 8 (16 bytes of bf16)",
               "cudaErrorLaunchFailure");
  expect_fault("wmma_alignment", at, "wmma::load_matrix_sync: pointer 0x",
               "cudaErrorLaunchFailure");
  r = run_child("wmma_alignment");
  CHECK(has(r.out, "is not 32-byte aligned"), "%s", r.out.c_str());
  expect_fault("wmma_bounds", at, "wmma::load_matrix_sync: a 16 x 16 tile with ldm 32: 0x",
               "cudaErrorLaunchFailure");
  r = run_child("wmma_bounds");
  CHECK(has(r.out, " + 992 bytes runs 416 bytes past the end of its allocation"), "%s",
        r.out.c_str());
  expect_fault("wmma_calls", at,
               "wmma::store_matrix_sync (accumulator) meets lane 0 at wmma::load_matrix_sync "
               "(matrix_a): every lane must make the same call",
               "cudaErrorLaunchFailure");
  expect_fault("wmma_partial_warp", at,
               "wmma::*_sync mask 0xffffffff names lane 16, past the block's 48 threads",
               "cudaErrorLaunchFailure");
}

/* ---- misuse that aborts (children) ---- */

__global__ void malloc_in_kernel(int *) {
  void *p;
  cudaMalloc(&p, 4);
}

static std::atomic<int> in_kernel_flag;

__global__ void waiting_kernel(int *) {
  in_kernel_flag = 1;
  for (int i = 0; i < 2000 && in_kernel_flag != 2; i++) usleep(1000);
}

static int child_runtime_in_kernel() {
  dbuf<int> d(1);
  FB_LAUNCH(malloc_in_kernel, 1, 1, 0, 0, d.p);
  return 0;
}

static int child_two_threads() {
  dbuf<int> d(1);
  std::thread other([] {
    while (in_kernel_flag != 1) usleep(100);
    void *p;
    cudaMalloc(&p, 4); /* while the main thread is inside the launch */
    in_kernel_flag = 2;
  });
  FB_LAUNCH(waiting_kernel, 1, 1, 0, 0, d.p);
  other.join();
  return 0;
}

static int child_barrier_outside() {
  __syncthreads();
  return 0;
}

static int child_bad_setting() {
  int n;
  cudaGetDeviceCount(&n);
  return 0;
}

static void test_misuse_aborts() {
  child_result r = run_child("runtime_in_kernel");
  CHECK(WIFSIGNALED(r.status) && has(r.out, "cuda-emu: cudaMalloc called from inside a kernel"),
        "%s", r.out.c_str());
  r = run_child("two_threads");
  CHECK(WIFSIGNALED(r.status) &&
            has(r.out,
                "cuda-emu: cudaMalloc called on one OS thread while another is inside a "
                "kernel launch"),
        "%s", r.out.c_str());
  r = run_child("barrier_outside");
  CHECK(WIFSIGNALED(r.status) && has(r.out, "cuda-emu: __syncthreads() called outside a kernel"),
        "%s", r.out.c_str());
  r = run_child("bad_setting", {"FB_EMU_ORDER=sideways"});
  CHECK(
      WIFSIGNALED(r.status) &&
          has(r.out, "cuda-emu: FB_EMU_ORDER=sideways: expected forward, reverse or shuffle:SEED"),
      "%s", r.out.c_str());
}

#ifdef __SANITIZE_ADDRESS__
__global__ void overrun_kernel(float *x, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) x[i] = 0.0f; /* the bug: <= */
}

static int child_overrun() {
  dbuf<float> x(100);
  FB_LAUNCH(overrun_kernel, 1, 128, 0, 0, x.p, 100);
  return 0;
}

/* through a pointer, past UBSan's index check: ASan instruments the statics of plain
 * functions (not those of templates) */
__global__ void shared_overrun_kernel(float *out) {
  __shared__ float s[32];
  float *p = s;
  p[threadIdx.x] = 1.0f; /* the bug: 33 threads */
  __syncthreads();
  out[threadIdx.x & 31] = s[threadIdx.x & 31];
}

static int child_shared_overrun() {
  dbuf<float> out(32);
  FB_LAUNCH(shared_overrun_kernel, 1, 33, 0, 0, out.p);
  return 0;
}

static void test_asan_sees_kernel_overruns() {
  child_result r = run_child("overrun");
  CHECK(!r.exited_ok() && has(r.out, "heap-buffer-overflow") && has(r.out, "overrun_kernel"), "%s",
        r.out.c_str());
  r = run_child("shared_overrun");
  CHECK(
      !r.exited_ok() && has(r.out, "global-buffer-overflow") && has(r.out, "shared_overrun_kernel"),
      "%s", r.out.c_str());
}
#endif

/* ---- the device settings (children) ---- */

static int child_device() {
  int n = -1;
  cudaError_t e = cudaGetDeviceCount(&n);
  printf("count=%s %d\n", cudaGetErrorName(e), n);
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
    printf("prop=%s sm_%d%d mem=%zu warp=%d threads=%d\n", p.name, p.major, p.minor,
           p.totalGlobalMem, p.warpSize, p.maxThreadsPerBlock);
  printf("set0=%s\n", cudaGetErrorName(cudaSetDevice(0)));
  printf("set1=%s\n", cudaGetErrorName(cudaSetDevice(1)));
  printf("free0=%s\n", cudaGetErrorName(cudaFree(0)));
  cudaStream_t s;
  e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  printf("stream=%s\n", cudaGetErrorName(e));
  if (e == cudaSuccess) cudaStreamDestroy(s);
  cublasHandle_t h;
  cublasStatus_t st = cublasCreate(&h);
  printf("cublas=%s\n", cublasGetStatusName(st));
  if (st == CUBLAS_STATUS_SUCCESS) cublasDestroy(h);
  void *q = nullptr;
  printf("malloc=%s\n", cudaGetErrorName(cudaMalloc(&q, 2 << 20)));
  size_t fr = 0, tot = 0;
  e = cudaMemGetInfo(&fr, &tot);
  printf("info=%s %zu %zu\n", cudaGetErrorName(e), fr, tot);
  cudaFree(q);
  return 0;
}

static void expect_device(std::vector<std::string> env, std::vector<const char *> lines) {
  std::string what = env.empty() ? "defaults" : env[0];
  child_result r = run_child("device", env);
  CHECK(r.exited_ok(), "%s: %s", what.c_str(), r.out.c_str());
  for (const char *l : lines)
    CHECK(has(r.out, l), "%s: no '%s' in:\n%s", what.c_str(), l, r.out.c_str());
}

static void test_device_settings() {
  expect_device({},
                {"count=cudaSuccess 1\n",
                 "prop=fastbrain CUDA emulator sm_90 mem=17179869184 warp=32 threads=1024\n",
                 "set0=cudaSuccess\n", "set1=cudaErrorInvalidDevice\n", "free0=cudaSuccess\n",
                 "stream=cudaSuccess\n", "cublas=CUBLAS_STATUS_SUCCESS\n", "malloc=cudaSuccess\n"});
  expect_device({"FB_EMU_SM=80"}, {"sm_80 "});
  expect_device({"FB_EMU_SM=75"}, {"sm_75 "});
  expect_device({"FB_EMU_DEVICES=2"}, {"count=cudaSuccess 2\n", "set1=cudaSuccess\n"});
  expect_device({"FB_EMU_DEVICES=0"},
                {"count=cudaErrorNoDevice 0\n", "set0=cudaErrorNoDevice\n",
                 "free0=cudaErrorNoDevice\n", "cublas=CUBLAS_STATUS_NOT_INITIALIZED\n"});
  expect_device({"FB_EMU_DRIVER=0"},
                {"count=cudaErrorInsufficientDriver 0\n", "set0=cudaErrorInsufficientDriver\n",
                 "malloc=cudaErrorInsufficientDriver\n"});
  expect_device({"FB_EMU_BUSY=1"},
                {"count=cudaSuccess 1\n", "prop=fastbrain CUDA emulator",
                 "set0=cudaErrorDevicesUnavailable\n", "free0=cudaErrorDevicesUnavailable\n",
                 "stream=cudaErrorDevicesUnavailable\n", "cublas=CUBLAS_STATUS_NOT_INITIALIZED\n",
                 "malloc=cudaErrorDevicesUnavailable\n"});
  expect_device({"FB_EMU_MEMORY=1048576"}, {"mem=1048576 ", "malloc=cudaErrorMemoryAllocation\n",
                                            "info=cudaSuccess 1048576 1048576\n"});
}

/* ---- speed ---- */

__global__ void axpy_kernel(float *y, const float *x, float a, size_t n) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

/* out[block] = sum of its 64 inputs: a shared-memory tree with six barriers */
__global__ void block_sum64_kernel(float *out, const float *in) {
  __shared__ float s[64];
  unsigned t = threadIdx.x;
  s[t] = in[blockIdx.x * 64 + t];
  for (unsigned stride = 32; stride > 0; stride >>= 1) {
    __syncthreads();
    if (t < stride) s[t] += s[t + stride];
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

/* out[warp] = sum of its 32 inputs by five shuffles */
__global__ void warp_sum_kernel(float *out, const float *in) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  float v = in[i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) out[i / 32] = v;
}

static void test_speed() {
#ifdef __SANITIZE_ADDRESS__
  const size_t n = 1 << 17; /* instrumented code at -O0 is about twenty times slower */
#else
  const size_t n = 1 << 20;
#endif
  std::vector<float> ones(n, 1.0f);
  dbuf<float> x(ones), y(ones), sums(n / 32);
  double t0 = cpu_now();
  FB_LAUNCH(axpy_kernel, (unsigned)(n / 256), 256, 0, 0, y.p, x.p, 2.0f, n);
  double t1 = cpu_now();
  FB_LAUNCH(block_sum64_kernel, (unsigned)(n / 64), 64, 0, 0, sums.p, x.p);
  double t2 = cpu_now();
  std::vector<float> s64 = sums.get();
  double t3 = cpu_now();
  FB_LAUNCH(warp_sum_kernel, (unsigned)(n / 256), 256, 0, 0, sums.p, x.p);
  double t4 = cpu_now();
  CUDA_OK(cudaGetLastError());
  std::vector<float> yy = y.get(), s32 = sums.get();
  CHECK(yy[0] == 3.0f && yy[n - 1] == 3.0f, "axpy %g", yy[n - 1]);
  CHECK(s64[0] == 64.0f && s64[n / 64 - 1] == 64.0f, "block sum %g", s64[0]);
  CHECK(s32[0] == 32.0f && s32[n / 32 - 1] == 32.0f, "warp sum %g", s32[0]);
  printf(
      "  %zu K threads, CPU time: elementwise (256/block) %.0f ms; 64/block with 6 barriers "
      "%.0f ms; 5 shuffles per warp %.0f ms\n",
      n >> 10, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t4 - t3) * 1e3);
}

/* ---- main ---- */

static const struct {
  const char *name;
  void (*fn)();
} tests[] = {
    {"transpose", test_transpose},
    {"barrier_with_exited_threads", test_barrier_with_exited_threads},
    {"coordinates", test_coordinates},
    {"warp_primitives", test_warp_primitives},
    {"activemask", test_activemask},
    {"atomics", test_atomics},
    {"poisoned_memory", test_poisoned_memory},
    {"launch_config", test_launch_config},
    {"memcpy_checks", test_memcpy_checks},
    {"stream_capture", test_stream_capture},
    {"memory_accounting", test_memory_accounting},
    {"cublas_gemm", test_cublas_gemm},
    {"cublaslt_bias", test_cublaslt_bias},
    {"bf16", test_bf16},
    {"wmma_gemm", test_wmma_gemm},
    {"wmma_layout", test_wmma_layout},
    {"wmma_barrier", test_wmma_barrier},
    {"wmma_faults", test_wmma_faults},
    {"thread_orders", test_thread_orders},
    {"faults", test_faults},
    {"misuse_aborts", test_misuse_aborts},
#ifdef __SANITIZE_ADDRESS__
    {"asan_sees_kernel_overruns", test_asan_sees_kernel_overruns},
#endif
    {"device_settings", test_device_settings},
    {"speed", test_speed},
};

static const struct {
  const char *name;
  int (*fn)();
} children[] = {
    {"order", child_order},
    {"divergent", child_divergent},
    {"deadlock", child_deadlock},
    {"partial_warp", child_partial_warp},
    {"exited_lane", child_exited_lane},
    {"unnamed_source", child_unnamed_source},
    {"mismatch", child_mismatch},
    {"own_lane", child_own_lane},
    {"width", child_width},
    {"overlap", child_overlap},
    {"host_pointer", child_host_pointer},
    {"freed_pointer", child_freed_pointer},
    {"fault_at", child_fault_at},
    {"wmma_layout", child_wmma_layout},
    {"wmma_missing_lane", child_wmma_missing_lane},
    {"wmma_arguments", child_wmma_arguments},
    {"wmma_ldm", child_wmma_ldm},
    {"wmma_alignment", child_wmma_alignment},
    {"wmma_bounds", child_wmma_bounds},
    {"wmma_calls", child_wmma_calls},
    {"wmma_partial_warp", child_wmma_partial_warp},
    {"runtime_in_kernel", child_runtime_in_kernel},
    {"two_threads", child_two_threads},
    {"barrier_outside", child_barrier_outside},
    {"bad_setting", child_bad_setting},
#ifdef __SANITIZE_ADDRESS__
    {"overrun", child_overrun},
    {"shared_overrun", child_shared_overrun},
#endif
    {"device", child_device},
};

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0) {
    setvbuf(stdout, nullptr, _IONBF, 0); /* in order with the emulator's stderr lines */
    for (const auto &c : children)
      if (strcmp(c.name, argv[2]) == 0) return c.fn();
    fprintf(stderr, "no child scenario %s\n", argv[2]);
    return 2;
  }
  double t0 = now();
  int failed = 0, run = 0;
  for (const auto &t : tests) {
    if (argc > 1 && !strstr(t.name, argv[1])) continue;
    int before = failed_checks;
    t.fn();
    run++;
    bool bad = failed_checks != before;
    failed += bad;
    printf("%s %s\n", bad ? "FAIL" : "ok  ", t.name);
  }
  printf("%d passed, %d failed (%.2f s)\n", run - failed, failed, now() - t0);
  return failed ? 1 : 0;
}
