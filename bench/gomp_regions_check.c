/* Ten `omp parallel` regions asking for two threads, for the tests of libgomp_regions.so: its
 * report must count ten calls of one region, and GOMP_REGIONS_THREADS=1 must run them on one. */
#include <omp.h>
#include <stdio.h>

static volatile double sink;

int main(void) {
  int largest_team = 0;
  for (int call = 0; call < 10; ++call) {
#pragma omp parallel num_threads(2)
    {
      double x = omp_get_thread_num();
      for (int i = 0; i < 100000; ++i) x = x * 0.999999 + 1e-9;
      sink = x;
#pragma omp critical
      if (omp_get_num_threads() > largest_team) largest_team = omp_get_num_threads();
    }
  }
  printf("10 regions run, largest team %d\n", largest_team);
  fflush(stdout); /* before the report, which the library prints at exit */
  return 0;
}
