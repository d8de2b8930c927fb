// The sparse contraction chain (see the header for what it computes).
#include "kernels/symmetric_contraction.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "e3nn/symmetric_contraction.hpp"
#include "kernels/entry_values.hpp"
#include "kernels/kernel_autograd.hpp"
#include "kernels/vector_units.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

// Blocks of kLanes rows handed to a thread at a time.
constexpr int64_t kBlocksPerTask = 8;

// The monomials of x [L] up to degree K, each a sorted index tuple i_1 ≤ … ≤ i_ν: monomial 0 is 1,
// and monomial m ≥ 1 is monomial lower[m] times x[variable[m]] (lower[m] < m).
struct Monomials {
  std::vector<int32_t> lower, variable;
  std::map<std::vector<int64_t>, int32_t> index;  // sorted tuple → monomial

  Monomials(int64_t coupling, int64_t degree) {
    std::vector<std::vector<int64_t>> previous{{}};
    add({}, 0, 0);
    for (int64_t d = 1; d <= degree; ++d) {
      std::vector<std::vector<int64_t>> current;
      for (const std::vector<int64_t>& tuple : previous)
        for (int64_t i = tuple.empty() ? 0 : tuple.back(); i < coupling; ++i) {
          std::vector<int64_t> longer = tuple;
          longer.push_back(i);
          add(longer, index.at(tuple), static_cast<int32_t>(i));
          current.push_back(std::move(longer));
        }
      previous = std::move(current);
    }
  }

 private:
  void add(const std::vector<int64_t>& tuple, int32_t lower_monomial, int32_t x) {
    index.emplace(tuple, static_cast<int32_t>(lower.size()));
    lower.push_back(lower_monomial);
    variable.push_back(x);
  }
};

// The whole chain as one polynomial. Every step is linear in its θ and in the step before, so
//   b_1[r, a] = Σ_ν Σ_p θ_ν[r, p] Σ_{i_1…i_ν} U_ν[a, i_1, …, i_ν, p] x[r, i_1]⋯x[r, i_ν],
// and the entries of U_ν that differ only by the order of i_1 … i_ν multiply the same monomial:
// summed once into S_ν[a, p, m], the row needs the few non-zero S entries and the monomials of
// x (220 for L = 9 up to degree 3) instead of the nested steps over U's entries. A group holds
// the entries of one (step, a, p).
struct ChainPlan : torch::CustomClassHolder {
  struct Group {
    int32_t step, output, param;
    int64_t begin;  // entries [begin, next group's begin)
  };
  struct Entry {
    int32_t monomial;
    double value;
  };
  int64_t coupling = 0, outputs = 0;
  std::vector<int64_t> params;           // P_k of each step
  std::vector<int32_t> lower, variable;  // the Monomials table
  std::vector<Group> groups;             // followed by an end marker
  std::vector<Entry> entries;
};

// us U_K … U_1 read as [outputs, L^ν, P_ν] (validated by the caller).
c10::intrusive_ptr<ChainPlan> chain_plan(const std::vector<at::Tensor>& us, const std::vector<int64_t>& params,
                                         int64_t coupling, int64_t outputs) {
  const int64_t K = static_cast<int64_t>(us.size());
  const Monomials monomials(coupling, K);
  auto plan = c10::make_intrusive<ChainPlan>();
  plan->coupling = coupling;
  plan->outputs = outputs;
  plan->params = params;
  plan->lower = monomials.lower;
  plan->variable = monomials.variable;
  const int64_t count = static_cast<int64_t>(monomials.lower.size());
  for (int64_t k = 0; k < K; ++k) {
    const int64_t P = params[k], tuples = us[k].numel() / (outputs * P), degree = K - k;
    // The monomial of each index tuple i_1 … i_ν (flattened as U's axes are).
    std::vector<int32_t> monomial_of(tuples);
    for (int64_t f = 0; f < tuples; ++f) {
      std::vector<int64_t> tuple(degree);
      for (int64_t q = degree, rest = f; q-- > 0; rest /= coupling) tuple[q] = rest % coupling;
      std::sort(tuple.begin(), tuple.end());
      monomial_of[f] = monomials.index.at(tuple);
    }
    const at::Tensor dense = us[k].to(at::kDouble).contiguous();
    const double* u = dense.data_ptr<double>();
    std::vector<double> symmetrised(count);
    for (int64_t a = 0; a < outputs; ++a)
      for (int64_t p = 0; p < P; ++p) {
        std::fill(symmetrised.begin(), symmetrised.end(), 0.0);
        bool any = false;
        for (int64_t f = 0; f < tuples; ++f) {
          const double value = u[(a * tuples + f) * P + p];
          if (value != 0.0) {
            symmetrised[monomial_of[f]] += value;
            any = true;
          }
        }
        if (!any) continue;
        plan->groups.push_back({static_cast<int32_t>(k), static_cast<int32_t>(a), static_cast<int32_t>(p),
                                static_cast<int64_t>(plan->entries.size())});
        for (int64_t m = 0; m < count; ++m)
          if (symmetrised[m] != 0.0) plan->entries.push_back({static_cast<int32_t>(m), symmetrised[m]});
      }
  }
  plan->groups.push_back({0, 0, 0, static_cast<int64_t>(plan->entries.size())});
  return plan;
}

// Plans by their U matrices: making one scans every U (84,000 entries for 2e at correlation 3,
// lmax 2), which on a small graph costs more than the kernel, so each is made once. An entry
// holds each U's TensorImpl weakly, so a freed U's entries expire and a U later allocated at the
// same address cannot hit them, and it remembers each U's data and version, so values loaded in
// place (a state_dict) or a conversion make a new plan.
class PlanCache {
 public:
  c10::intrusive_ptr<ChainPlan> get(const std::vector<at::Tensor>& us, const std::vector<int64_t>& params,
                                    int64_t coupling, int64_t outputs) {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (const Entry& entry : entries_)
      if (entry.params == params && entry.coupling == coupling && matches(entry, us)) return entry.plan;
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(), [](const Entry& e) { return expired(e); }),
                   entries_.end());
    if (entries_.size() >= kMaxEntries) entries_.erase(entries_.begin());
    Entry entry{{}, params, coupling, chain_plan(us, params, coupling, outputs)};
    for (const at::Tensor& u : us)
      entry.us.push_back({c10::weak_intrusive_ptr<c10::TensorImpl>(u.getIntrusivePtr()), u.data_ptr(), u._version()});
    entries_.push_back(std::move(entry));
    return entries_.back().plan;
  }

 private:
  // Bounds the entries of U matrices that stay alive but are no longer evaluated.
  static constexpr size_t kMaxEntries = 64;
  struct UState {
    c10::weak_intrusive_ptr<c10::TensorImpl> impl;
    const void* data;
    int64_t version;
  };
  struct Entry {
    std::vector<UState> us;
    std::vector<int64_t> params;
    int64_t coupling;
    c10::intrusive_ptr<ChainPlan> plan;
  };
  static bool matches(const Entry& entry, const std::vector<at::Tensor>& us) {
    if (entry.us.size() != us.size()) return false;
    for (size_t k = 0; k < us.size(); ++k) {
      const UState& state = entry.us[k];
      if (state.data != us[k].data_ptr() || state.version != us[k]._version() ||
          state.impl.lock().get() != us[k].unsafeGetTensorImpl())
        return false;
    }
    return true;
  }
  static bool expired(const Entry& entry) {
    return std::any_of(entry.us.begin(), entry.us.end(), [](const UState& u) { return u.impl.expired(); });
  }

  std::mutex mutex_;
  std::vector<Entry> entries_;
};

PlanCache& plan_cache() {
  static PlanCache cache;
  return cache;
}

// Rows evaluated together, each in a lane of its own: one row at a time would chain every sum on
// the previous addition, while the lanes are independent and fill the vector units.
constexpr int kLanes = 8;
#pragma GCC diagnostic ignored "-Wpsabi"  // vector types only live inside inlined bodies

// kLanes values of T as native vectors of Bytes (16: SSE2, 32: AVX2) held in registers; a
// single vector as wide as all lanes would be built in memory on a narrower target. Aligned as
// T only: the buffers come from std::vector, whose allocations need not meet a 32-byte alignment.
template <typename T, int Bytes>
struct Lanes {
  typedef T Native __attribute__((vector_size(Bytes), aligned(sizeof(T))));
  static constexpr int kPerVector = Bytes / static_cast<int>(sizeof(T)), kVectors = kLanes / kPerVector;
  Native v[kVectors];

  static KLAY_KERNEL_BODY Lanes filled(T value) {
    Lanes out;
    for (int i = 0; i < kVectors; ++i) out.v[i] = Native{} + value;
    return out;
  }
  KLAY_KERNEL_BODY T lane(int l) const { return v[l / kPerVector][l % kPerVector]; }
  KLAY_KERNEL_BODY void set_lane(int l, T value) { v[l / kPerVector][l % kPerVector] = value; }
  KLAY_KERNEL_BODY Lanes operator*(const Lanes& o) const {
    Lanes out;
    for (int i = 0; i < kVectors; ++i) out.v[i] = v[i] * o.v[i];
    return out;
  }
  KLAY_KERNEL_BODY Lanes operator*(T c) const {
    Lanes out;
    const Native b = Native{} + c;
    for (int i = 0; i < kVectors; ++i) out.v[i] = v[i] * b;
    return out;
  }
  KLAY_KERNEL_BODY Lanes& operator+=(const Lanes& o) {
    for (int i = 0; i < kVectors; ++i) v[i] += o.v[i];
    return *this;
  }
};

// One thread's view of the plan in type T, with the buffers of one block of kLanes rows.
template <typename T, int Bytes>
class BlockPolynomial {
 public:
  using V = Lanes<T, Bytes>;

  KLAY_KERNEL_BODY BlockPolynomial(const ChainPlan& plan, const at::Tensor& x, const std::vector<at::Tensor>& thetas)
      : plan_(plan),
        value_(entry_values<T>(plan.entries)),
        x_(x.data_ptr<T>()),
        rows_(x.size(0)),
        xb_(plan.coupling),
        monomial_(plan.lower.size()),
        grad_(plan.lower.size()),
        outb_(plan.outputs),
        gx_(plan.coupling) {
    for (size_t k = 0; k < thetas.size(); ++k) {
      theta_.push_back(thetas[k].data_ptr<T>());
      thetab_.emplace_back(plan.params[k]);
      gthetab_.emplace_back(plan.params[k]);
    }
  }

  // b_1 of rows first … first + kLanes (those below the row count) into out [R, outputs].
  KLAY_KERNEL_BODY void forward(int64_t first, T* out) {
    load(first);
    std::fill(outb_.begin(), outb_.end(), V::filled(0));
    const size_t groups = plan_.groups.size() - 1;
    for (size_t g = 0; g < groups; ++g) {
      const ChainPlan::Group& group = plan_.groups[g];
      V acc = V::filled(0);
      for (int64_t e = group.begin; e < plan_.groups[g + 1].begin; ++e)
        acc += monomial_[plan_.entries[e].monomial] * value_[e];
      outb_[group.output] += thetab_[group.step][group.param] * acc;
    }
    store(first, outb_, out);
  }

  // The gradients of Σ grad_out·b_1 for the same rows: with respect to x (into grad_x [R, L])
  // and each θ_k (into grad_theta[k] [R, P_k] where not null).
  KLAY_KERNEL_BODY void backward(int64_t first, const T* grad_out, T* grad_x, const std::vector<T*>& grad_theta) {
    load(first);
    gather(first, lanes(first), grad_out, outb_);  // here: the gradient with respect to b_1
    for (std::vector<V>& gt : gthetab_) std::fill(gt.begin(), gt.end(), V::filled(0));
    std::fill(grad_.begin(), grad_.end(), V::filled(0));
    const size_t groups = plan_.groups.size() - 1;
    for (size_t g = 0; g < groups; ++g) {
      const ChainPlan::Group& group = plan_.groups[g];
      const V& ga = outb_[group.output];  // a copy would go through the stack in halves
      const V weight = ga * thetab_[group.step][group.param];
      const int64_t end = plan_.groups[g + 1].begin;
      if (!grad_theta[group.step]) {  // MD: the element weights are constants
        for (int64_t e = group.begin; e < end; ++e) grad_[plan_.entries[e].monomial] += weight * value_[e];
        continue;
      }
      V acc = V::filled(0);
      for (int64_t e = group.begin; e < end; ++e) {
        const T v = value_[e];
        const int32_t m = plan_.entries[e].monomial;
        acc += monomial_[m] * v;
        grad_[m] += weight * v;
      }
      gthetab_[group.step][group.param] += ga * acc;
    }
    // Back through monomial[m] = monomial[lower[m]]·x[variable[m]], highest first. Monomials of
    // one lower monomial are consecutive: their share of its gradient is summed in registers,
    // where adding each to memory would chain every update on the store of the one before.
    std::fill(gx_.begin(), gx_.end(), V::filled(0));
    for (size_t m = plan_.lower.size() - 1; m >= 1;) {
      const int32_t lower = plan_.lower[m];
      V into_lower = V::filled(0);
      for (; m >= 1 && plan_.lower[m] == lower; --m) {
        const int32_t v = plan_.variable[m];
        gx_[v] += grad_[m] * monomial_[lower];
        into_lower += grad_[m] * xb_[v];
      }
      grad_[lower] += into_lower;
    }
    store(first, gx_, grad_x);
    for (size_t k = 0; k < grad_theta.size(); ++k)
      if (grad_theta[k]) store(first, gthetab_[k], grad_theta[k]);
  }

 private:
  KLAY_KERNEL_BODY int64_t lanes(int64_t first) const { return std::min<int64_t>(kLanes, rows_ - first); }

  // x and the θ of the block's rows into lanes (zeros past the last row), and the monomials.
  KLAY_KERNEL_BODY void load(int64_t first) {
    const int64_t n = lanes(first);
    gather(first, n, x_, xb_);
    for (size_t k = 0; k < theta_.size(); ++k) gather(first, n, theta_[k], thetab_[k]);
    monomial_[0] = V::filled(1);
    for (size_t m = 1; m < monomial_.size(); ++m) monomial_[m] = monomial_[plan_.lower[m]] * xb_[plan_.variable[m]];
  }

  // Rows first … first + n of rows [R, columns.size()] into the lanes of `columns`.
  static KLAY_KERNEL_BODY void gather(int64_t first, int64_t n, const T* rows, std::vector<V>& columns) {
    const int64_t width = static_cast<int64_t>(columns.size());
    for (int64_t c = 0; c < width; ++c) {
      V column = V::filled(0);
      for (int64_t l = 0; l < n; ++l) column.set_lane(static_cast<int>(l), rows[(first + l) * width + c]);
      columns[c] = column;
    }
  }

  // The lanes of `columns` back to rows of `rows` [R, columns.size()].
  KLAY_KERNEL_BODY void store(int64_t first, const std::vector<V>& columns, T* rows) const {
    const int64_t width = static_cast<int64_t>(columns.size());
    for (int64_t l = 0; l < lanes(first); ++l)
      for (int64_t c = 0; c < width; ++c) rows[(first + l) * width + c] = columns[c].lane(static_cast<int>(l));
  }

  const ChainPlan& plan_;
  const std::vector<T> value_;
  const T* x_;
  const int64_t rows_;
  std::vector<const T*> theta_;
  std::vector<V> xb_;                             // x by component
  std::vector<std::vector<V>> thetab_, gthetab_;  // per step: θ_k, its gradient
  std::vector<V> monomial_, grad_;                // the monomials, the gradient with respect to them
  std::vector<V> outb_, gx_;                      // b_1 (or its gradient), the x gradient
};

// What a forward or backward over blocks first … last reads and writes (grad_thetas[k] may be
// undefined: not wanted).
template <typename T>
struct BlockArgs {
  const ChainPlan& plan;
  const at::Tensor& x;
  const std::vector<at::Tensor>& thetas;
  T* out;  // forward: b_1; backward: the gradient with respect to b_1 (read)
  T* grad_x;
  std::vector<T*> grad_thetas;
};

template <typename T, int Bytes>
KLAY_KERNEL_BODY void forward_blocks(const BlockArgs<T>& a, int64_t first, int64_t last) {
  BlockPolynomial<T, Bytes> polynomial(a.plan, a.x, a.thetas);
  for (int64_t b = first; b < last; ++b) polynomial.forward(b * kLanes, a.out);
}

template <typename T, int Bytes>
KLAY_KERNEL_BODY void backward_blocks(const BlockArgs<T>& a, int64_t first, int64_t last) {
  BlockPolynomial<T, Bytes> polynomial(a.plan, a.x, a.thetas);
  for (int64_t b = first; b < last; ++b) polynomial.backward(b * kLanes, a.out, a.grad_x, a.grad_thetas);
}

template <typename T>
void forward_blocks_baseline(const BlockArgs<T>& a, int64_t first, int64_t last) {
  forward_blocks<T, 16>(a, first, last);
}
template <typename T>
void backward_blocks_baseline(const BlockArgs<T>& a, int64_t first, int64_t last) {
  backward_blocks<T, 16>(a, first, last);
}
#ifdef KLAY_HAVE_AVX2_ENTRY
template <typename T>
KLAY_AVX2_ENTRY void forward_blocks_avx2(const BlockArgs<T>& a, int64_t first, int64_t last) {
  forward_blocks<T, 32>(a, first, last);
}
template <typename T>
KLAY_AVX2_ENTRY void backward_blocks_avx2(const BlockArgs<T>& a, int64_t first, int64_t last) {
  backward_blocks<T, 32>(a, first, last);
}
#endif

// Runs `forward` (or backward) over the blocks of kLanes rows; blocks are independent, so every
// thread writes rows of its own.
template <typename T>
void run_blocks(const BlockArgs<T>& a, bool forward) {
  using Entry = void (*)(const BlockArgs<T>&, int64_t, int64_t);
  Entry entry = forward ? forward_blocks_baseline<T> : backward_blocks_baseline<T>;
#ifdef KLAY_HAVE_AVX2_ENTRY
  if (wide_vector_units()) entry = forward ? forward_blocks_avx2<T> : backward_blocks_avx2<T>;
#endif
  const int64_t blocks = (a.x.size(0) + kLanes - 1) / kLanes;
  at::parallel_for(0, blocks, kBlocksPerTask, [&](int64_t first, int64_t last) { entry(a, first, last); });
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::vector<at::Tensor> contiguous(at::TensorList tensors) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& t : tensors) out.push_back(t.contiguous());
  return out;
}

class SparseContractionChain : public torch::autograd::Function<SparseContractionChain> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList thetas, at::TensorList us,
                            const c10::intrusive_ptr<ChainPlan>& plan) {
    ++g_calls.forward;
    const at::Tensor xc = x.contiguous();
    const std::vector<at::Tensor> tc = contiguous(thetas);
    at::Tensor out = at::empty({xc.size(0), plan->outputs}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sparse_contraction_forward", [&] {
      run_blocks<scalar_t>({*plan, xc, tc, out.data_ptr<scalar_t>(), nullptr, {}}, /*forward=*/true);
    });
    variable_list saved{xc};
    saved.insert(saved.end(), tc.begin(), tc.end());
    saved.insert(saved.end(), us.begin(), us.end());
    ctx->save_for_backward(saved);
    keep_plan(ctx, plan);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const auto plan = kept_plan<ChainPlan>(ctx);
    const size_t K = plan->params.size();
    const at::Tensor& x = saved[0];
    const std::vector<at::Tensor> thetas(saved.begin() + 1, saved.begin() + 1 + K);
    const std::vector<at::Tensor> us(saved.begin() + 1 + K, saved.end());
    const at::Tensor& g = grad_outputs[0];
    variable_list grads(1 + 2 * K + 1);  // x, the thetas, the us, the plan
    std::vector<bool> wanted;
    for (size_t k = 0; k <= K; ++k) wanted.push_back(ctx->needs_input_grad(k));
    if (!g.defined() || std::none_of(wanted.begin(), wanted.end(), [](bool w) { return w; })) return grads;

    if (at::GradMode::is_enabled()) {
      ++g_calls.composite_backward;
      std::vector<at::Tensor> inputs{x};
      inputs.insert(inputs.end(), thetas.begin(), thetas.end());
      const auto composite = [&](const std::vector<at::Tensor>& v) {
        return e3nn::composite_contraction_chain(v[0], {v.begin() + 1, v.end()}, us);
      };
      return composite_partials(inputs, wanted, composite, g, grads.size());
    }

    ++g_calls.backward;
    const at::Tensor gc = g.contiguous();
    at::Tensor grad_x = at::empty_like(x);
    std::vector<at::Tensor> grad_thetas;
    for (size_t k = 0; k < K; ++k) grad_thetas.push_back(wanted[1 + k] ? at::empty_like(thetas[k]) : at::Tensor());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sparse_contraction_backward", [&] {
      std::vector<scalar_t*> grad_theta;
      for (const at::Tensor& gt : grad_thetas) grad_theta.push_back(gt.defined() ? gt.data_ptr<scalar_t>() : nullptr);
      run_blocks<scalar_t>({*plan, x, thetas, gc.data_ptr<scalar_t>(), grad_x.data_ptr<scalar_t>(), grad_theta},
                           /*forward=*/false);
    });
    if (wanted[0]) grads[0] = grad_x;
    for (size_t k = 0; k < K; ++k) grads[1 + k] = grad_thetas[k];
    return grads;
  }
};

[[noreturn]] void misfit(const at::Tensor& x, const std::vector<at::Tensor>& thetas, const std::vector<at::Tensor>& us,
                         size_t k, const std::string& what) {
  throw Error("symmetric contraction: step " + std::to_string(k) + " of " + std::to_string(us.size()) +
              " (features " + c10::str(x.sizes()) + ", element weights " +
              (k < thetas.size() ? c10::str(thetas[k].sizes()) : std::string("missing")) + ", U " +
              (k < us.size() ? c10::str(us[k].sizes()) : std::string("missing")) + "): " + what);
}

}  // namespace

KernelCounters contraction_counters() { return g_calls.snapshot(); }

at::Tensor sparse_contraction_chain(const at::Tensor& x, const std::vector<at::Tensor>& thetas,
                                    const std::vector<at::Tensor>& us) {
  if (us.empty() || thetas.size() != us.size())
    misfit(x, thetas, us, 0, "needs one element-weight matrix per U, at least one");
  if (x.dim() != 2 || x.size(1) == 0) misfit(x, thetas, us, 0, "features must be [R, L] with L > 0");
  const int64_t L = x.size(1);
  int64_t outputs = 0;
  for (size_t k = 0; k < us.size(); ++k) {
    const at::Tensor& theta = thetas[k];
    if (theta.dim() != 2 || theta.size(0) != x.size(0) || theta.size(1) == 0)
      misfit(x, thetas, us, k, "element weights must be [R, P] with the features' R rows");
    if (us[k].numel() % (L * theta.size(1)) != 0)
      misfit(x, thetas, us, k, "U does not read as [A, L, P]");
    const int64_t step_outputs = us[k].numel() / (L * theta.size(1));
    if (k > 0 && step_outputs * L != outputs)
      misfit(x, thetas, us, k, "U has " + std::to_string(step_outputs) + " outputs, the step before expects " +
                                   std::to_string(outputs / L) + " (its " + std::to_string(outputs) + " / L)");
    outputs = step_outputs;
  }
  bool take = kernels_take({x});
  for (const at::Tensor& theta : thetas) take = take && kernels_take({x, theta});
  if (!take) return e3nn::composite_contraction_chain(x, thetas, us);

  std::vector<int64_t> params;
  for (const at::Tensor& theta : thetas) params.push_back(theta.size(1));
  return SparseContractionChain::apply(x, at::TensorList(thetas), at::TensorList(us), plan_cache().get(us, params, L, outputs));
}

}  // namespace klay::kernels
