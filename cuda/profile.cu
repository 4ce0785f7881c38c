/* profile.cu: where a step's time goes on the GPU (backend.h's phase and profile): an event on
 * the stream at each change of phase, nothing waited for until the end; the time between two
 * events counts in the phase the first one began. The events go when the profile is read. */
#include <string.h>

#include <vector>

#include "common.cuh"

namespace {
struct mark {
  cudaEvent_t event;
  fb_phase phase; /* the phase that begins at this event */
};
std::vector<mark> marks; /* this profile's, in order */
bool on;

void record(fb_phase p) {
  mark m = {};
  FB_CUDA_CHECK(cudaEventCreate(&m.event));
  m.phase = p;
  FB_CUDA_CHECK(cudaEventRecord(m.event, fb_cuda_stream_writing({}))); /* writes nothing */
  marks.push_back(m);
}

void destroy_marks() {
  for (const mark &m : marks) FB_CUDA_CHECK(cudaEventDestroy(m.event));
  marks.clear();
}
}  // namespace

extern "C" void fb_cuda_phase(fb_phase p) {
  if (on && marks.back().phase != p) record(p);
}

extern "C" int fb_cuda_profiling(void) { return on; }

extern "C" void fb_cuda_profile(int enable, double *ms) {
  if (enable) {
    destroy_marks();
    on = true;
    record(FB_PHASE_ELEMENTWISE);
    return;
  }
  memset(ms, 0, sizeof(double) * FB_PHASE_COUNT);
  if (!on) return;
  on = false;
  record(marks.back().phase); /* the end of the last phase */
  FB_CUDA_CHECK(cudaEventSynchronize(marks.back().event));
  for (size_t i = 0; i + 1 < marks.size(); i++) {
    float between = 0;
    FB_CUDA_CHECK(cudaEventElapsedTime(&between, marks[i].event, marks[i + 1].event));
    ms[marks[i].phase] += between;
  }
  destroy_marks();
}
