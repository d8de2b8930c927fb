// e3nn.o3.wigner_3j (e3nn >= 0.5; docs/layers.md#wigner-3j).
#include "e3nn/wigner_3j.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "base/error.hpp"

namespace klay::e3nn {
namespace {

using Real = long double;
using Complex = std::complex<Real>;

Real factorial(int n) {
  Real f = 1;
  for (int k = 2; k <= n; ++k) f *= k;
  return f;
}

// <l1 m1; l2 m2 | l3 m3>, Condon–Shortley phase (QuTiP's `clebsch`, as copied by e3nn).
Real su2_clebsch_gordan(int l1, int m1, int l2, int m2, int l3, int m3) {
  if (m3 != m1 + m2) return 0;
  const int vmin = std::max({-l1 + l2 + m3, -l1 + m1, 0});
  const int vmax = std::min({l2 + l3 + m1, l3 - l1 + l2, l3 + m3});
  const Real prefactor = std::sqrt(
      (2 * l3 + 1) * factorial(l3 + l1 - l2) * factorial(l3 - l1 + l2) * factorial(l1 + l2 - l3) *
      factorial(l3 + m3) * factorial(l3 - m3) /
      (factorial(l1 + l2 + l3 + 1) * factorial(l1 - m1) * factorial(l1 + m1) * factorial(l2 - m2) *
       factorial(l2 + m2)));
  Real sum = 0;
  for (int v = vmin; v <= vmax; ++v) {
    const Real sign = ((v + l2 + m2) % 2 == 0) ? 1 : -1;
    sum += sign * factorial(l2 + l3 + m1 - v) * factorial(l1 - m1 + v) /
           (factorial(v) * factorial(l3 - l1 + l2 - v) * factorial(l3 + m3 - v) * factorial(v + l1 - l2 - m3));
  }
  return prefactor * sum;
}

// e3nn's change_basis_real_to_complex(l): row l+m (complex basis), column = real-basis index.
std::vector<std::vector<Complex>> real_to_complex(int l) {
  const int d = 2 * l + 1;
  const Real r = 1 / std::sqrt(Real(2));
  const Complex i(0, 1);
  std::vector<std::vector<Complex>> q(d, std::vector<Complex>(d, Complex(0)));
  for (int m = -l; m < 0; ++m) {
    q[l + m][l - m] = r;
    q[l + m][l + m] = -i * r;
  }
  q[l][l] = 1;
  for (int m = 1; m <= l; ++m) {
    const Real sign = (m % 2 == 0) ? 1 : -1;
    q[l + m][l + m] = sign * r;
    q[l + m][l - m] = i * sign * r;
  }
  Complex phase = 1;  // (-i)^l makes the coupling coefficients real
  for (int k = 0; k < l; ++k) phase *= -i;
  for (auto& row : q)
    for (auto& v : row) v *= phase;
  return q;
}

at::Tensor compute_wigner_3j(int l1, int l2, int l3) {
  const int d1 = 2 * l1 + 1, d2 = 2 * l2 + 1, d3 = 2 * l3 + 1;
  const auto q1 = real_to_complex(l1), q2 = real_to_complex(l2), q3 = real_to_complex(l3);
  std::vector<Complex> r(static_cast<size_t>(d1) * d2 * d3, Complex(0));
  // R[a,b,c] = Σ_{i,k,n} Q1[i,a] Q2[k,b] conj(Q3[n,c]) C[i,k,n]; C is nonzero only for m3 = m1 + m2
  // and every row of Q has at most two nonzeros, so the sparse loops below are cheap.
  for (int i = 0; i < d1; ++i) {
    for (int k = 0; k < d2; ++k) {
      const int m3 = (i - l1) + (k - l2);
      if (std::abs(m3) > l3) continue;
      const int n = m3 + l3;
      const Real c = su2_clebsch_gordan(l1, i - l1, l2, k - l2, l3, m3);
      if (c == 0) continue;
      for (int a = 0; a < d1; ++a) {
        if (q1[i][a] == Complex(0)) continue;
        for (int b = 0; b < d2; ++b) {
          if (q2[k][b] == Complex(0)) continue;
          const Complex ab = q1[i][a] * q2[k][b] * c;
          for (int cc = 0; cc < d3; ++cc) {
            if (q3[n][cc] == Complex(0)) continue;
            r[(static_cast<size_t>(a) * d2 + b) * d3 + cc] += ab * std::conj(q3[n][cc]);
          }
        }
      }
    }
  }
  Real norm2 = 0, max_imag = 0;
  for (const auto& v : r) {
    norm2 += std::norm(v);
    max_imag = std::max(max_imag, std::abs(v.imag()));
  }
  if (max_imag > 1e-5L)
    throw Error("wigner_3j(" + std::to_string(l1) + "," + std::to_string(l2) + "," + std::to_string(l3) +
                "): coupling coefficients are not real");
  const Real norm = std::sqrt(norm2);
  at::Tensor w = at::empty({d1, d2, d3}, at::kDouble);
  double* out = w.data_ptr<double>();
  for (size_t k = 0; k < r.size(); ++k) out[k] = static_cast<double>(r[k].real() / norm);
  return w;
}

}  // namespace

at::Tensor wigner_3j(int l1, int l2, int l3) {
  if (l1 < 0 || l2 < 0 || l3 < std::abs(l1 - l2) || l3 > l1 + l2)
    throw Error("wigner_3j(" + std::to_string(l1) + "," + std::to_string(l2) + "," + std::to_string(l3) +
                "): the triangle condition |l1-l2| <= l3 <= l1+l2 does not hold");
  static std::mutex mutex;
  static std::map<std::tuple<int, int, int>, at::Tensor> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& entry = cache[{l1, l2, l3}];
  if (!entry.defined()) entry = compute_wigner_3j(l1, l2, l3);
  return entry.clone();
}

}  // namespace klay::e3nn
