/* graph.cu: a piece of work captured once and replayed as a CUDA graph (backend.h's replay),
 * which saves the launch cost of its hundreds of small kernels. A key's first call runs the
 * work as usual (the workspace and anything lazy grow then), its second captures it on the
 * stream and launches the graph, later calls launch the graph without calling the work. A few
 * graphs are kept, the least recently used dropped; all of them captured again when the
 * workspace moves, and all dropped with their keys when any memory is freed (a key names
 * buffers by address: a new one at a freed one's address must not get its graph).
 * FB_CUDA_GRAPHS=0, or a profile (whose events are per launch), runs every call as usual. */
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

extern "C" {
#include "log.h"
}

namespace {

const int kept_graphs = 16;

struct entry {
  uint64_t key;
  uint64_t used;        /* the clock at its last call; 0: a free slot */
  cudaGraphExec_t exec; /* NULL until the second call */
};
entry table[kept_graphs];
uint64_t clock_now;

bool enabled() {
  static int on = -1;
  if (on < 0) {
    const char *v = getenv("FB_CUDA_GRAPHS");
    on = !(v && strcmp(v, "0") == 0);
  }
  return on;
}

void drop(entry *e) {
  if (e->exec) FB_CUDA_CHECK(cudaGraphExecDestroy(e->exec));
  *e = entry{};
}

entry *find(uint64_t key) {
  for (entry &e : table)
    if (e.used && e.key == key) return &e;
  return NULL;
}

/* A free slot, or the least recently used one emptied. */
entry *slot() {
  entry *oldest = &table[0];
  for (entry &e : table) {
    if (!e.used) return &e;
    if (e.used < oldest->used) oldest = &e;
  }
  drop(oldest);
  return oldest;
}

/* work recorded on the stream (nothing runs) and instantiated; a call in it that a capture
 * refuses (a sync, a download, an allocation) is a fault naming it */
cudaGraphExec_t capture(void (*work)(void *), void *ctx) {
  cudaStream_t s = fb_cuda_stream();
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  FB_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  work(ctx);
  FB_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  FB_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  FB_CUDA_CHECK(cudaGraphDestroy(graph));
  fb_debug("cuda: captured a graph");
  return exec;
}

}  // namespace

extern "C" int fb_cuda_replay(uint64_t key, void (*work)(void *), void *ctx) {
  if (!enabled() || fb_cuda_profiling()) {
    work(ctx);
    return 0;
  }
  entry *e = find(key);
  if (!e) { /* the warm-up */
    e = slot();
    *e = entry{key, ++clock_now, NULL};
    work(ctx);
    return 0;
  }
  e->used = ++clock_now;
  if (!e->exec) e->exec = capture(work, ctx);
  FB_CUDA_CHECK(cudaGraphLaunch(e->exec, fb_cuda_stream()));
  return 1;
}

/* The keys stay: their work ran once already, so the workspace it needs is there when it is
 * captured again. */
extern "C" void fb_cuda_graphs_recapture(void) {
  for (entry &e : table)
    if (e.exec) {
      FB_CUDA_CHECK(cudaGraphExecDestroy(e.exec));
      e.exec = NULL;
    }
}

extern "C" void fb_cuda_graphs_drop(void) {
  for (entry &e : table) drop(&e);
}
