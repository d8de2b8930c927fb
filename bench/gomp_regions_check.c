/* Ten `omp parallel` regions on two threads, for the test of libgomp_regions.so: its report must
 * count ten calls of one region. */
#include <omp.h>
#include <stdio.h>

static volatile double sink;

int main(void) {
  for (int call = 0; call < 10; ++call) {
#pragma omp parallel num_threads(2)
    {
      double x = omp_get_thread_num();
      for (int i = 0; i < 100000; ++i) x = x * 0.999999 + 1e-9;
      sink = x;
    }
  }
  printf("10 regions run\n");
  return 0;
}
