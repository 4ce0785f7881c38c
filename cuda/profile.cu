/* profile.cu: where a step's time goes on the GPU (backend.h's phase and profile): an event on
 * the stream at each change of phase, nothing waited for until the end; the time between two
 * events counts in the phase the first one began. The events are kept for the next profile. */
#include <string.h>

#include <vector>

#include "common.cuh"

namespace {
struct mark {
  cudaEvent_t event;
  fb_phase phase; /* the phase that begins at this event */
};
std::vector<mark> marks; /* marks[0..used) are this profile's */
size_t used;
bool on;

void record(fb_phase p) {
  if (used == marks.size()) {
    mark m = {};
    FB_CUDA_CHECK(cudaEventCreate(&m.event));
    marks.push_back(m);
  }
  marks[used].phase = p;
  FB_CUDA_CHECK(cudaEventRecord(marks[used].event, fb_cuda_stream()));
  used++;
}
}  // namespace

extern "C" void fb_cuda_phase(fb_phase p) {
  if (on && marks[used - 1].phase != p) record(p);
}

extern "C" void fb_cuda_profile(int enable, double *ms) {
  if (enable) {
    used = 0;
    on = true;
    record(FB_PHASE_ELEMENTWISE);
    return;
  }
  memset(ms, 0, sizeof(double) * FB_PHASE_COUNT);
  if (!on) return;
  on = false;
  record(marks[used - 1].phase); /* the end of the last phase */
  FB_CUDA_CHECK(cudaEventSynchronize(marks[used - 1].event));
  for (size_t i = 0; i + 1 < used; i++) {
    float between = 0;
    FB_CUDA_CHECK(cudaEventElapsedTime(&between, marks[i].event, marks[i + 1].event));
    ms[marks[i].phase] += between;
  }
}
