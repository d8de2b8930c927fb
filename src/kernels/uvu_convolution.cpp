// Fused uvu convolution kernels (see the header for what they compute).
//
// Layout: e3nn stores a block of `mul` copies of a (2l+1)-wide irrep multiplicity-major
// (copy u, component i at u·(2l+1) + i). The kernels work on the transpose of each block,
// component-major (i·mul + u), so that the innermost loops run over the copies u with unit stride
// and vectorise; node features, the incoming gradient and the results are transposed once per
// node, never per edge.
#include "kernels/uvu_convolution.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "e3nn/scatter.hpp"
#include "kernels/entry_values.hpp"
#include "kernels/irrep_blocks.hpp"
#include "kernels/prefetch.hpp"
#include "kernels/radial_mlp.hpp"
#include "kernels/row_matmul.hpp"
#include "kernels/scalar_activation.hpp"
#include "kernels/vector_units.hpp"
#include "base/error.hpp"

namespace klay::kernels {
namespace {

KernelCallCounts g_calls;

// The fewest receivers worth a thread of their own.
constexpr int64_t kFewestReceiversPerThread = 16;

// A feature vector's irrep entries as the kernels move them between e3nn's layout (copy u,
// component i of an entry at offset + u·(2l+1) + i) and the component-major one (offset + i·mul + u),
// for rows of `width` values.
struct LayoutEntry {
  int64_t offset;
  EntryLayout layout;
};
std::vector<LayoutEntry> component_major_entries(const e3nn::Irreps& irreps) {
  std::vector<LayoutEntry> entries;
  const std::vector<int64_t> offsets = irreps.offsets();
  const int64_t width = irreps.dim();
  for (size_t b = 0; b < irreps.size(); ++b) {
    const int64_t mul = irreps[b].mul, d = irreps[b].ir.dim();
    if (mul * d > 0) entries.push_back({offsets[b], {mul, d, width, width, mul}});
  }
  return entries;
}

// The tensor product reduced to what the kernels read: per path, the non-zero w3j entries
// (times the path coefficient) grouped by output component k.
struct Plan : torch::CustomClassHolder {
  struct Entry {
    int32_t i, j;  // component of the node-feature block, component of the edge-attribute block
    double value;
  };
  struct Path {
    int64_t in_offset, sh_offset, out_offset, weight_offset, mul, d3;
    std::vector<int64_t> k_begin;  // entries of output component k: [k_begin[k], k_begin[k+1]) of `entries`
  };
  double scale = 1.0;  // folded into the entries' values
  std::vector<Path> paths;
  std::vector<Entry> entries;
  std::vector<double> double_values;  // the entries' values in each type a kernel runs in
  std::vector<float> float_values;
  std::vector<LayoutEntry> in_entries, out_entries;  // component_major_entries of the input and output
  int64_t dim_in = 0, dim_sh = 0, dim_out = 0, weight_numel = 0, max_mul = 1;
  int64_t uniform_mul = 0;  // the multiplicity of every path, or 0 when they differ

  template <typename T>
  const T* values() const {
    if constexpr (std::is_same_v<T, float>)
      return float_values.data();
    else
      return double_values.data();
  }
};

// The tensor product a forward ran with, kept by its autograd node for a backward with
// create_graph (which differentiates the composite path). Plans hold their product only weakly
// (see PlanCache), so this is what keeps it alive as long as the graph needs it.
struct TensorProductRef : torch::CustomClassHolder {
  explicit TensorProductRef(std::shared_ptr<const e3nn::TensorProductImpl> p) : tp(std::move(p)) {}
  std::shared_ptr<const e3nn::TensorProductImpl> tp;
};

bool plan_supports(const e3nn::TensorProductImpl& tp) {
  if (tp.internal_weights() || tp.weight_numel() == 0 || tp.paths().empty()) return false;
  for (const auto& p : tp.paths())
    if (p.ins.mode != e3nn::ConnectionMode::uvu || !p.ins.has_weight || p.mul2 != 1 || p.mul1 == 0) return false;
  return true;
}

c10::intrusive_ptr<Plan> make_plan(const e3nn::TensorProductImpl& tp, double scale) {
  auto plan = c10::make_intrusive<Plan>();
  plan->scale = scale;
  plan->in_entries = component_major_entries(tp.irreps_in1());
  plan->out_entries = component_major_entries(tp.irreps_out());
  plan->dim_in = tp.irreps_in1().dim();
  plan->dim_sh = tp.irreps_in2().dim();
  plan->dim_out = tp.irreps_out().dim();
  plan->weight_numel = tp.weight_numel();
  const std::vector<int64_t> off1 = tp.irreps_in1().offsets(), off2 = tp.irreps_in2().offsets(),
                             off3 = tp.irreps_out().offsets();
  int64_t weight_offset = 0;
  for (const auto& p : tp.paths()) {
    Plan::Path path{off1[p.ins.i_in1], off2[p.ins.i_in2], off3[p.ins.i_out], weight_offset, p.mul1, p.d3, {}};
    weight_offset += p.weight_size;
    plan->max_mul = std::max(plan->max_mul, p.mul1);
    const at::Tensor w3j = p.w3j.to(at::kDouble).contiguous();
    const auto c = w3j.accessor<double, 3>();
    for (int64_t k = 0; k < p.d3; ++k) {
      path.k_begin.push_back(static_cast<int64_t>(plan->entries.size()));
      for (int64_t i = 0; i < p.d1; ++i)
        for (int64_t j = 0; j < p.d2; ++j)
          if (c[i][j][k] != 0.0)
            plan->entries.push_back(
                {static_cast<int32_t>(i), static_cast<int32_t>(j), c[i][j][k] * p.coefficient * scale});
    }
    path.k_begin.push_back(static_cast<int64_t>(plan->entries.size()));
    plan->paths.push_back(std::move(path));
  }
  plan->uniform_mul = plan->paths.front().mul;
  for (const Plan::Path& path : plan->paths)
    if (path.mul != plan->uniform_mul) plan->uniform_mul = 0;
  plan->double_values = entry_values<double>(plan->entries);
  plan->float_values = entry_values<float>(plan->entries);
  return plan;
}

std::shared_ptr<const e3nn::TensorProductImpl> shared_product(const e3nn::TensorProductImpl& tp) {
  return std::dynamic_pointer_cast<const e3nn::TensorProductImpl>(tp.shared_from_this());
}

// Plans by (tensor product, scale): making one converts and scans every path's Wigner-3j tensor,
// which on a small graph costs more than the kernel itself, so each is made once. An entry holds
// its product weakly, so a freed model's entries expire (and a product later allocated at the
// same address cannot hit them), and it remembers the storage and version of each path's 3j
// tensor, so values loaded in place (a state_dict) or a conversion (module.to) make a new plan.
class PlanCache {
 public:
  c10::intrusive_ptr<Plan> get(const e3nn::TensorProductImpl& tp, double scale) {
    const std::vector<TensorState> state = state_of(tp);
    const std::lock_guard<std::mutex> lock(mutex_);
    for (const Entry& entry : entries_)
      if (entry.scale == scale && entry.state == state && entry.tp.lock().get() == &tp) return entry.plan;
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                  [&](const Entry& entry) {
                                    return entry.tp.expired() || (entry.scale == scale && entry.tp.lock().get() == &tp);
                                  }),
                   entries_.end());
    if (entries_.size() >= kMaxEntries) entries_.erase(entries_.begin());
    entries_.push_back({shared_product(tp), scale, state, make_plan(tp, scale)});
    return entries_.back().plan;
  }

 private:
  // Bounds the entries of products that stay alive but are no longer evaluated.
  static constexpr size_t kMaxEntries = 64;
  struct TensorState {
    const void* data;
    int64_t version;
    bool operator==(const TensorState& o) const { return data == o.data && version == o.version; }
  };
  struct Entry {
    std::weak_ptr<const e3nn::TensorProductImpl> tp;
    double scale;
    std::vector<TensorState> state;
    c10::intrusive_ptr<Plan> plan;
  };
  static std::vector<TensorState> state_of(const e3nn::TensorProductImpl& tp) {
    std::vector<TensorState> state;
    for (const auto& p : tp.paths()) state.push_back({p.w3j.data_ptr(), p.w3j._version()});
    return state;
  }

  std::mutex mutex_;
  std::vector<Entry> entries_;
};

PlanCache& plan_cache() {
  static PlanCache cache;
  return cache;
}

// Rows of features in e3nn's layout [rows, width] as component-major rows.
template <typename T>
at::Tensor component_major(const std::vector<LayoutEntry>& entries, const at::Tensor& features) {
  const at::Tensor src = features.contiguous();
  at::Tensor dst = at::empty_like(src);
  const int64_t width = src.size(1);
  const T* s = src.data_ptr<T>();
  T* d = dst.data_ptr<T>();
  at::parallel_for(0, src.size(0), 256, [&](int64_t begin, int64_t end) {
    for (const LayoutEntry& e : entries)
      to_component_major(e.layout, end - begin, s + begin * width + e.offset, d + begin * width + e.offset);
  });
  return dst;
}

// One component-major row back to e3nn's layout, inside the kernels' entry points.
template <typename T>
KLAY_KERNEL_BODY void row_to_multiplicity_major(const std::vector<LayoutEntry>& entries, const T* src, T* dst) {
  for (const LayoutEntry& e : entries) copy_to_multiplicity_major(e.layout, 1, src + e.offset, dst + e.offset);
}

void check_nodes(const int64_t* node_of_edge, int64_t num_edges, int64_t num_nodes, const char* what) {
  for (int64_t e = 0; e < num_edges; ++e)
    if (node_of_edge[e] < 0 || node_of_edge[e] >= num_nodes)
      throw Error(std::string("convolution: edge ") + std::to_string(e) + " has " + what + " " +
                  std::to_string(node_of_edge[e]) + ", outside 0.." + std::to_string(num_nodes - 1));
}

// Edges grouped by one of their end nodes (counting sort, stable: a node's edges keep their order).
// Made once by the forward and kept for the backward.
struct Grouping : torch::CustomClassHolder {
  std::vector<int64_t> start;  // node n's edges are order[start[n] .. start[n+1])
  std::vector<int64_t> order;
};

c10::intrusive_ptr<Grouping> group_edges(const int64_t* node_of_edge, int64_t num_edges, int64_t num_nodes,
                                         const char* what) {
  auto grouping = c10::make_intrusive<Grouping>();
  Grouping& g = *grouping;
  check_nodes(node_of_edge, num_edges, num_nodes, what);
  g.start.assign(num_nodes + 1, 0);
  for (int64_t e = 0; e < num_edges; ++e) ++g.start[node_of_edge[e] + 1];
  for (int64_t n = 0; n < num_nodes; ++n) g.start[n + 1] += g.start[n];
  g.order.resize(num_edges);
  std::vector<int64_t> next(g.start.begin(), g.start.end() - 1);
  for (int64_t e = 0; e < num_edges; ++e) g.order[next[node_of_edge[e]]++] = e;
  return grouping;
}

// The loops. A multiplicity known at compile time (Mul > 0, the common uniform widths) lets the
// copies loop unroll into vector registers; Mul = 0 reads it from the path. Each body is inlined
// into a baseline, an AVX2+FMA and an AVX-512 entry point (kernels/vector_units.hpp).

// One row of `mul` copies held while the loops run: in registers when the width is known at
// compile time (GCC vector extensions, as many of the widest vectors as divide the row, at most
// `Widest` bytes: 64-byte AVX-512 registers in the AVX-512 entry points, 32-byte AVX2 ones in the
// AVX2 entry points, pairs of SSE2 registers in the baseline ones; 16 or 8 bytes for the small
// widths, single lanes for odd ones), else in a scratch row. Summing a row of a few copies through
// memory instead chains each update on the store of the previous one. Each lane is one copy's
// sum, so the width does not change the numbers. Half as many instructions per row in 64-byte
// registers made the Si example's MD step about 5 % faster in float64, 3 % in float32, on this
// project's machine (AMD Zen 5).
// The vector type only lives inside always-inline bodies and the entry points compiled for one
// target; no function with a vector argument crosses a target boundary, which -Wpsabi warns about.
#pragma GCC diagnostic ignored "-Wpsabi"
template <typename T, int Bytes>
struct VectorOf {
  typedef T type __attribute__((vector_size(Bytes)));
};

template <typename T, int Mul, int Widest>
constexpr int vector_bytes() {
  constexpr int row = Mul * static_cast<int>(sizeof(T));
  return Widest >= 64 && row % 64 == 0 ? 64
         : row % 32 == 0               ? 32
         : row % 16 == 0               ? 16
         : row % 8 == 0                ? 8
                                       : static_cast<int>(sizeof(T));
}

template <typename T, int Mul, int Widest, bool InRegisters = (Mul > 0)>
struct Copies;

template <typename T, int Mul, int Widest>
struct Copies<T, Mul, Widest, true> {
  using V = typename VectorOf<T, vector_bytes<T, Mul, Widest>()>::type;
  static constexpr int kLanes = sizeof(V) / sizeof(T), kVectors = Mul / kLanes;
  V v[kVectors];

  explicit Copies(T*) {}
  static KLAY_KERNEL_BODY V load(const T* p) {
    V x;
    __builtin_memcpy(&x, p, sizeof x);
    return x;
  }
  static KLAY_KERNEL_BODY void store(T* p, V x) { __builtin_memcpy(p, &x, sizeof x); }

  KLAY_KERNEL_BODY void zero(int64_t) {
    for (int i = 0; i < kVectors; ++i) v[i] = V{};
  }
  // v = a·b
  KLAY_KERNEL_BODY void set_product(const T* a, const T* b, int64_t) {
    for (int i = 0; i < kVectors; ++i) v[i] = load(a + i * kLanes) * load(b + i * kLanes);
  }
  // v += c·x
  KLAY_KERNEL_BODY void add_scaled(T c, const T* x, int64_t) {
    for (int i = 0; i < kVectors; ++i) v[i] += c * load(x + i * kLanes);
  }
  // out = a·v
  KLAY_KERNEL_BODY void store_product_to(T* out, const T* a, int64_t) const {
    for (int i = 0; i < kVectors; ++i) store(out + i * kLanes, load(a + i * kLanes) * v[i]);
  }
  // out += a·v
  KLAY_KERNEL_BODY void add_product_to(T* out, const T* a, int64_t) const {
    for (int i = 0; i < kVectors; ++i) store(out + i * kLanes, load(out + i * kLanes) + load(a + i * kLanes) * v[i]);
  }
  // out += c·v
  KLAY_KERNEL_BODY void add_scaled_to(T* out, T c, int64_t) const {
    for (int i = 0; i < kVectors; ++i) store(out + i * kLanes, load(out + i * kLanes) + c * v[i]);
  }
  // Lanes of the rows that add_scaled_lane_products_to sums into.
  static constexpr int64_t lanes(int64_t) { return kLanes; }
  // out[lane] += c·Σ_vectors (x·v)[lane]: a row of x·v folded to one vector in registers, so that
  // one vector per call goes through memory (its sum over the lanes is taken later).
  KLAY_KERNEL_BODY void add_scaled_lane_products_to(T* out, T c, const T* x, int64_t) const {
    V p = load(x) * v[0];
    for (int i = 1; i < kVectors; ++i) p += load(x + i * kLanes) * v[i];
    store(out, load(out) + c * p);
  }
};

template <typename T, int Mul, int Widest>
struct Copies<T, Mul, Widest, false> {
  T* __restrict v;

  explicit Copies(T* scratch) : v(scratch) {}
  KLAY_KERNEL_BODY void zero(int64_t mul) { std::fill(v, v + mul, T(0)); }
  KLAY_KERNEL_BODY void set_product(const T* a, const T* b, int64_t mul) {
    for (int64_t u = 0; u < mul; ++u) v[u] = a[u] * b[u];
  }
  KLAY_KERNEL_BODY void add_scaled(T c, const T* __restrict x, int64_t mul) {
    for (int64_t u = 0; u < mul; ++u) v[u] += c * x[u];
  }
  KLAY_KERNEL_BODY void store_product_to(T* __restrict out, const T* __restrict a, int64_t mul) const {
    for (int64_t u = 0; u < mul; ++u) out[u] = a[u] * v[u];
  }
  KLAY_KERNEL_BODY void add_product_to(T* __restrict out, const T* __restrict a, int64_t mul) const {
    for (int64_t u = 0; u < mul; ++u) out[u] += a[u] * v[u];
  }
  KLAY_KERNEL_BODY void add_scaled_to(T* __restrict out, T c, int64_t mul) const {
    for (int64_t u = 0; u < mul; ++u) out[u] += c * v[u];
  }
  static constexpr int64_t lanes(int64_t mul) { return mul; }
  KLAY_KERNEL_BODY void add_scaled_lane_products_to(T* __restrict out, T c, const T* __restrict x, int64_t mul) const {
    for (int64_t u = 0; u < mul; ++u) out[u] += c * (x[u] * v[u]);
  }
};

// Where the per-edge weights come from: one row per edge index (weights_from < 0), or, in the
// radial convolution, a block holding the rows of the edges at grouping positions weights_from, …
// (evaluated for the block, in cache).
template <typename Args>
inline int64_t weight_row(const Args& a, int64_t position, int64_t edge) {
  return a.weights_from < 0 ? edge : position - a.weights_from;
}

template <typename T>
struct ForwardArgs {
  const Plan* plan;
  const T* value;  // the plan's entries in T
  const T *x, *sh, *w;
  const int64_t* sender;
  const Grouping* by_receiver;
  T* out;
  int64_t weights_from = -1;
};

// One path of one edge into its receiver's accumulator (component-major):
// acc[k][u] += w_e[u] · Σ_{i,j} c_ijk sh_e[j] x[i][u].
template <typename T, int Mul, int Widest>
KLAY_KERNEL_BODY void forward_path(const Plan::Path& p, const Plan::Entry* entries, const T* value, const T* xe,
                                   const T* ye, const T* we, T* acc, T* scratch) {
  Copies<T, Mul, Widest> t(scratch);
  const int64_t mul = Mul > 0 ? Mul : p.mul;
  const T* xp = xe + p.in_offset;
  const T* yp = ye + p.sh_offset;
  for (int64_t k = 0; k < p.d3; ++k) {
    t.zero(mul);
    for (int64_t n = p.k_begin[k]; n < p.k_begin[k + 1]; ++n)
      t.add_scaled(value[n] * yp[entries[n].j], xp + entries[n].i * mul, mul);
    t.add_product_to(acc + p.out_offset + k * mul, we + p.weight_offset, mul);
  }
}

// A path's multiplicity as a compile-time width where one is compiled (Mul = 0: the plan's paths
// differ in multiplicity, so each path picks its own), else the general loop. A macro, not a
// generic lambda: a lambda would not get the AVX2 entry points' target attribute, and the
// always-inline path bodies could not be inlined into it.
#define KLAY_FOR_PATH_WIDTH(Mul, p, CALL)        \
  do {                                             \
    if constexpr (Mul > 0) {                       \
      CALL(Mul);                                   \
    } else {                                       \
      switch ((p).mul) {                           \
        case 1: CALL(1); break;                    \
        case 2: CALL(2); break;                    \
        case 3: CALL(3); break;                    \
        case 4: CALL(4); break;                    \
        case 8: CALL(8); break;                    \
        case 16: CALL(16); break;                  \
        case 32: CALL(32); break;                  \
        default: CALL(0); break;                   \
      }                                            \
    }                                              \
  } while (0)

// Asks for the rows edge e's step reads (its sender's features, its attributes and weights) and,
// given gx, the sender's row of the feature gradient: one edge ahead, as the senders are scattered
// over feature matrices larger than the L2 cache.
template <typename Args, typename T>
inline void prefetch_edge(const Args& a, int64_t e, T* gx) {
  const Plan& plan = *a.plan;
  const int64_t sender = a.sender[e];
  prefetch(a.x + sender * plan.dim_in, plan.dim_in);
  if (gx) prefetch_for_writing(gx + sender * plan.dim_in, plan.dim_in);
  prefetch(a.sh + e * plan.dim_sh, plan.dim_sh);
  if (a.weights_from < 0) prefetch(a.w + e * plan.weight_numel, plan.weight_numel);
}

// out[r] = Σ over r's edges e of Σ_paths w_e[u] · Σ_{i,j} c_ijk sh_e[j] x[sender_e][i][u].
template <typename T, int Mul, int Widest>
KLAY_KERNEL_BODY void forward_rows(const ForwardArgs<T>& a, int64_t begin, int64_t end, T* acc, T* scratch) {
  const Plan& plan = *a.plan;
  const Plan::Entry* entries = plan.entries.data();
  for (int64_t r = begin; r < end; ++r) {
    std::fill(acc, acc + plan.dim_out, T(0));
    for (int64_t q = a.by_receiver->start[r]; q < a.by_receiver->start[r + 1]; ++q) {
      const int64_t e = a.by_receiver->order[q];
      if (q + 1 < a.by_receiver->start[end]) prefetch_edge(a, a.by_receiver->order[q + 1], static_cast<T*>(nullptr));
      const T* xe = a.x + a.sender[e] * plan.dim_in;
      const T* ye = a.sh + e * plan.dim_sh;
      const T* we = a.w + weight_row(a, q, e) * plan.weight_numel;
      for (const Plan::Path& p : plan.paths) {
#define KLAY_FORWARD_PATH(Width) forward_path<T, Width, Widest>(p, entries, a.value, xe, ye, we, acc, scratch)
        KLAY_FOR_PATH_WIDTH(Mul, p, KLAY_FORWARD_PATH);
#undef KLAY_FORWARD_PATH
      }
    }
    row_to_multiplicity_major(plan.out_entries, acc, a.out + r * plan.dim_out);
  }
}

// The lanes of the backward's edge-attribute rows where paths differ in multiplicity: as many as
// the widest path's copies, or a 64-byte vector's when that is more (each path writes its first
// Copies::lanes).
template <typename T>
constexpr int64_t gy_lanes(int64_t max_mul) {
  return std::max<int64_t>(max_mul, 64 / sizeof(T));
}

template <typename T>
struct BackwardArgs {
  const Plan* plan;
  const T* value;
  const T *x, *sh, *w, *g;  // x and g component-major
  const int64_t* sender;
  const Grouping* by_receiver;
  T *grad_sh, *grad_w;  // each may be null: not wanted; grad_w's rows as w's (weight_row)
  int64_t weights_from = -1;
};

// One path of one edge: its share of the sender's feature gradient (into gxs, or none), of the
// edge-attribute gradient per vector lane (into gy_copies, [dim_sh][stride]) and the path's weight
// gradient (into gwe, or none), from the receiver's output gradient ge.
template <typename T, int Mul, int Widest>
KLAY_KERNEL_BODY void backward_path(const Plan::Path& p, const Plan::Entry* entries, const T* value, const T* xs,
                                    T* gxs, const T* ye, const T* we, T* gwe, const T* ge, T* gy_copies,
                                    int64_t stride, T* scratch, int64_t max_mul) {
  Copies<T, Mul, Widest> t(scratch), wg(scratch + max_mul);
  const int64_t mul = Mul > 0 ? Mul : p.mul;
  const T* xp = xs + p.in_offset;
  const T* yp = ye + p.sh_offset;
  T* gyp = gy_copies + p.sh_offset * stride;
  for (int64_t k = 0; k < p.d3; ++k) {
    const T* gk = ge + p.out_offset + k * mul;
    wg.set_product(we + p.weight_offset, gk, mul);
    t.zero(mul);
    for (int64_t n = p.k_begin[k]; n < p.k_begin[k + 1]; ++n) {
      const T v = value[n], c = v * yp[entries[n].j];
      const T* xi = xp + entries[n].i * mul;
      t.add_scaled(c, xi, mul);
      if (gxs) wg.add_scaled_to(gxs + p.in_offset + entries[n].i * mul, c, mul);
      wg.add_scaled_lane_products_to(gyp + entries[n].j * stride, v, xi, mul);
    }
    // The path's weight gradient is written by its first output component, then summed into.
    if (gwe && k == 0) t.store_product_to(gwe + p.weight_offset, gk, mul);
    if (gwe && k > 0) t.add_product_to(gwe + p.weight_offset, gk, mul);
  }
}

// Gradients of Σ g·out with respect to the edge attributes and the weights (one row per edge) and,
// into `gx` (component-major [N_s][dim_in], this thread's own accumulator, or null), the node
// features. Edges are grouped by receiver so that the receiver's gradient row, the widest operand,
// is read once for all its edges; only the narrower sender rows are gathered.
template <typename T, int Mul, int Widest>
KLAY_KERNEL_BODY void backward_rows(const BackwardArgs<T>& a, int64_t begin, int64_t end, T* gx, T* scratch) {
  const Plan& plan = *a.plan;
  const Plan::Entry* entries = plan.entries.data();
  // Per edge, the edge-attribute gradient Σ_u x·(w g) is kept per vector lane and summed over the
  // lanes once per edge: one horizontal sum per attribute instead of one per 3j entry.
  T* __restrict gy_copies = scratch + 2 * plan.max_mul;  // [dim_sh][stride]
  const int64_t stride = Mul > 0 ? Copies<T, Mul, Widest>::lanes(Mul) : gy_lanes<T>(plan.max_mul);
  for (int64_t r = begin; r < end; ++r) {
    const T* ge = a.g + r * plan.dim_out;
    if (r + 1 < end) prefetch(ge + plan.dim_out, plan.dim_out);
    for (int64_t q = a.by_receiver->start[r]; q < a.by_receiver->start[r + 1]; ++q) {
      const int64_t e = a.by_receiver->order[q];
      if (q + 1 < a.by_receiver->start[end]) prefetch_edge(a, a.by_receiver->order[q + 1], gx);
      const T* xs = a.x + a.sender[e] * plan.dim_in;
      T* gxs = gx ? gx + a.sender[e] * plan.dim_in : nullptr;
      const T* ye = a.sh + e * plan.dim_sh;
      const T* we = a.w + weight_row(a, q, e) * plan.weight_numel;
      T* gwe = a.grad_w ? a.grad_w + weight_row(a, q, e) * plan.weight_numel : nullptr;
      std::fill(gy_copies, gy_copies + plan.dim_sh * stride, T(0));
      for (const Plan::Path& p : plan.paths) {
#define KLAY_BACKWARD_PATH(Width)                                                                          \
  backward_path<T, Width, Widest>(p, entries, a.value, xs, gxs, ye, we, gwe, ge, gy_copies, stride, scratch, \
                          plan.max_mul)
        KLAY_FOR_PATH_WIDTH(Mul, p, KLAY_BACKWARD_PATH);
#undef KLAY_BACKWARD_PATH
      }
      if (a.grad_sh) {
        T* gye = a.grad_sh + e * plan.dim_sh;
        for (int64_t j = 0; j < plan.dim_sh; ++j) {
          T sum = 0;
          for (int64_t lane = 0; lane < stride; ++lane) sum += gy_copies[j * stride + lane];
          gye[j] = sum;
        }
      }
    }
  }
}

template <typename T, int Mul>
void forward_rows_baseline(const ForwardArgs<T>& a, int64_t begin, int64_t end, T* acc, T* scratch) {
  forward_rows<T, Mul, 32>(a, begin, end, acc, scratch);
}
template <typename T, int Mul>
void backward_rows_baseline(const BackwardArgs<T>& a, int64_t begin, int64_t end, T* gx, T* scratch) {
  backward_rows<T, Mul, 32>(a, begin, end, gx, scratch);
}
#ifdef KLAY_HAVE_AVX2_ENTRY
template <typename T, int Mul>
KLAY_AVX2_ENTRY void forward_rows_avx2(const ForwardArgs<T>& a, int64_t begin, int64_t end, T* acc, T* scratch) {
  forward_rows<T, Mul, 32>(a, begin, end, acc, scratch);
}
template <typename T, int Mul>
KLAY_AVX2_ENTRY void backward_rows_avx2(const BackwardArgs<T>& a, int64_t begin, int64_t end, T* gx, T* scratch) {
  backward_rows<T, Mul, 32>(a, begin, end, gx, scratch);
}
template <typename T, int Mul>
KLAY_AVX512_ENTRY void forward_rows_avx512(const ForwardArgs<T>& a, int64_t begin, int64_t end, T* acc, T* scratch) {
  forward_rows<T, Mul, 64>(a, begin, end, acc, scratch);
}
template <typename T, int Mul>
KLAY_AVX512_ENTRY void backward_rows_avx512(const BackwardArgs<T>& a, int64_t begin, int64_t end, T* gx, T* scratch) {
  backward_rows<T, Mul, 64>(a, begin, end, gx, scratch);
}
#endif

template <typename T>
using ForwardRows = void (*)(const ForwardArgs<T>&, int64_t, int64_t, T*, T*);
template <typename T>
using BackwardRows = void (*)(const BackwardArgs<T>&, int64_t, int64_t, T*, T*);

// The entry point for this CPU and the plan's multiplicity: one compiled width (the small ones of
// the conformance and example models, the powers of two of larger ones) or the general loop.
template <typename T, int Mul>
std::pair<ForwardRows<T>, BackwardRows<T>> entry_points() {
  return {KLAY_WIDEST_ENTRY(forward_rows, T, Mul), KLAY_WIDEST_ENTRY(backward_rows, T, Mul)};
}

template <typename T>
std::pair<ForwardRows<T>, BackwardRows<T>> entry_points_for(const Plan& plan) {
  switch (plan.uniform_mul) {
    case 2: return entry_points<T, 2>();
    case 3: return entry_points<T, 3>();
    case 4: return entry_points<T, 4>();
    case 8: return entry_points<T, 8>();
    case 16: return entry_points<T, 16>();
    case 32: return entry_points<T, 32>();
    case 64: return entry_points<T, 64>();
    default: return entry_points<T, 0>();
  }
}

// What a receiver costs beyond its edges: its output row, written by the forward for every
// receiver (zeros where it has no edges) and read by the backward where it has edges. An edge reads
// its sender's row (and in the backward adds into that row's gradient). In units of one value of
// those rows, a receiver costs kReceiverRowCost x dim_out and an edge dim_in + dim_out. Measured on
// the Si example's two convolutions backward: the first (16 scalar channels in, 144 values out; its
// ghost receivers have few edges each) costs 0.20 us per receiver against 0.106 per edge (1.9
// edges), the second (144 in, 48 scalars out) about nothing per receiver against 0.15 per edge; the
// rule gives 1.8 and 0.5 edges.
constexpr int64_t kReceiverRowCost = 2;

enum class Pass { forward, backward };

// The receivers split into one range per thread, each holding an equal share of the work (edges
// and receivers, as above): the first receivers (owned atoms) have full neighbour lists and the
// last (ghosts) few or none, so ranges of equal numbers of receivers leave one thread most of the
// work, and ranges of equal numbers of edges leave the ghosts' thread more rows. The split depends
// on the graph and the plan only, so a given thread count always gives the same bits.
// Range k is [bounds[k], bounds[k + 1]).
std::vector<int64_t> thread_ranges(const Plan& plan, const Grouping& by_receiver, Pass pass) {
  const int64_t num_receivers = static_cast<int64_t>(by_receiver.start.size()) - 1;
  const int64_t ranges =
      std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), num_receivers / kFewestReceiversPerThread));
  const int64_t edge_cost = plan.dim_in + plan.dim_out, receiver_cost = kReceiverRowCost * plan.dim_out;
  std::vector<int64_t> bounds{0};
  if (ranges > 1) {
    std::vector<int64_t> cost(num_receivers + 1, 0);  // of the receivers before r
    for (int64_t r = 0; r < num_receivers; ++r) {
      const int64_t edges = by_receiver.start[r + 1] - by_receiver.start[r];
      cost[r + 1] = cost[r] + edges * edge_cost + (edges > 0 || pass == Pass::forward ? receiver_cost : 0);
    }
    for (int64_t k = 1; k < ranges; ++k)
      bounds.push_back(std::lower_bound(cost.begin() + bounds.back(), cost.end() - 1, cost.back() * k / ranges) -
                       cost.begin());
  }
  bounds.push_back(num_receivers);
  return bounds;
}

// f(k, begin, end) for every range, one per thread.
template <typename F>
void for_each_range(const std::vector<int64_t>& bounds, const F& f) {
  at::parallel_for(0, static_cast<int64_t>(bounds.size()) - 1, 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) f(k, bounds[k], bounds[k + 1]);
  });
}

// `range(args, begin, end, acc, scratch)` runs receivers [begin, end) on the calling thread: the
// forward entry point itself, or the radial convolution's blocks of edges around it.
template <typename T, typename Range>
void forward_kernel(const ForwardArgs<T>& args, const Range& range) {
  const Plan& plan = *args.plan;
  for_each_range(thread_ranges(plan, *args.by_receiver, Pass::forward), [&](int64_t, int64_t begin, int64_t end) {
    std::vector<T> acc(plan.dim_out), scratch(2 * plan.max_mul);
    range(args, begin, end, acc.data(), scratch.data());
  });
}

// The senders of the edges of receivers [begin, end): the rows of the node-feature gradient that
// those edges add into.
struct SenderSpan {
  int64_t begin = 0, end = 0;
};

SenderSpan sender_span(const int64_t* sender, const Grouping& by_receiver, int64_t begin, int64_t end) {
  SenderSpan span{std::numeric_limits<int64_t>::max(), 0};
  for (int64_t q = by_receiver.start[begin]; q < by_receiver.start[end]; ++q) {
    const int64_t s = sender[by_receiver.order[q]];
    span.begin = std::min(span.begin, s);
    span.end = std::max(span.end, s + 1);
  }
  return span.end > span.begin ? span : SenderSpan{};
}

// Each thread's range of receivers sums the node-feature gradient into an accumulator of its own,
// over the senders its edges reach only (a stage's edges reach a part of the atoms); the
// accumulators are added in the order of their ranges, into the first, so a given thread count
// always gives the same bits.
// `range(args, begin, end, part, scratch)` as forward_kernel's, for the backward entry point.
template <typename T, typename Range>
void backward_kernel(const BackwardArgs<T>& args, int64_t num_senders, T* grad_x, const Range& range) {
  const Plan& plan = *args.plan;
  const Grouping& by_receiver = *args.by_receiver;
  const int64_t* sender = args.sender;
  const std::vector<int64_t> bounds = thread_ranges(plan, by_receiver, Pass::backward);
  const int64_t ranges = static_cast<int64_t>(bounds.size()) - 1, width = plan.dim_in;
  const int64_t part_size = grad_x ? num_senders * width : 0;
  std::vector<SenderSpan> spans(ranges);
  // Allocated here and cleared by each range's thread: memory from glibc's other arenas cost the
  // second thread twice as long to clear (measured: 70 against 32 us for 1.6 MB).
  const std::unique_ptr<T[]> accumulators(grad_x ? new T[ranges * part_size] : nullptr);
  for_each_range(bounds, [&](int64_t k, int64_t begin, int64_t end) {
    T* part = grad_x ? accumulators.get() + k * part_size : nullptr;
    if (part) {
      spans[k] = sender_span(sender, by_receiver, begin, end);
      std::fill(part + spans[k].begin * width, part + spans[k].end * width, T(0));
    }
    std::vector<T> scratch(2 * plan.max_mul + plan.dim_sh * gy_lanes<T>(plan.max_mul));
    range(args, begin, end, part, scratch.data());
  });
  if (!grad_x) return;
  SenderSpan reached{num_senders, 0};  // the union of the spans: where the first accumulator sums
  for (const SenderSpan& span : spans)
    if (span.end > span.begin) reached = {std::min(reached.begin, span.begin), std::max(reached.end, span.end)};
  if (reached.end <= reached.begin) reached = {};
  // Each thread takes an equal share of the reached rows (summed and converted) and of the others
  // (zeros): the edges may reach a part of the atoms only, all in one thread's half.
  T* sum = accumulators.get();
  const int64_t num_reached = reached.end - reached.begin, num_others = num_senders - num_reached;
  const int64_t shares = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), num_senders / 256));
  at::parallel_for(0, shares, 1, [&](int64_t share_begin, int64_t share_end) {
    for (int64_t p = share_begin; p < share_end; ++p) {
      // The others in the order [0, reached.begin), then [reached.end, num_senders).
      for (int64_t u = num_others * p / shares; u < num_others * (p + 1) / shares; ++u) {
        const int64_t row = u < reached.begin ? u : u + num_reached;
        std::fill(grad_x + row * width, grad_x + (row + 1) * width, T(0));
      }
      const int64_t first = reached.begin + num_reached * p / shares;
      const int64_t last = reached.begin + num_reached * (p + 1) / shares;
      if (last <= first) continue;
      // The first accumulator's rows that its own edges did not reach start from zero.
      std::fill(sum + first * width, sum + std::clamp(spans[0].begin, first, last) * width, T(0));
      std::fill(sum + std::clamp(spans[0].end, first, last) * width, sum + last * width, T(0));
      for (int64_t k = 1; k < ranges; ++k) {
        const T* part = accumulators.get() + k * part_size;
        const int64_t from = std::max(first, spans[k].begin), to = std::min(last, spans[k].end);
        for (int64_t i = from * width; i < to * width; ++i) sum[i] += part[i];
      }
      for (const LayoutEntry& e : plan.in_entries)
        to_multiplicity_major(e.layout, last - first, sum + first * width + e.offset, grad_x + first * width + e.offset,
                              /*add=*/false);
    }
  });
}

// A large result the kernel writes in full, on transparent huge pages where the system offers them
// on request (THP "madvise" mode): unless the host keeps freed memory (klay_keep_freed_memory, as
// pair_style klay does), glibc maps each allocation above its mmap threshold fresh, and first
// touching it costs a page fault per 4 KiB (at 30,000 edges x 32 channels, 84 MB of weight
// gradient: nearly half of the backward). Only the 2 MiB pages inside the allocation are asked for,
// which it fills anyway.
at::Tensor empty_written_in_full(const at::Tensor& like) {
  at::Tensor t = at::empty_like(like, at::MemoryFormat::Contiguous);
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHugePage = uintptr_t(2) << 20;
  if (t.nbytes() >= 8 * kHugePage) {
    const uintptr_t data = reinterpret_cast<uintptr_t>(t.data_ptr());
    const uintptr_t begin = (data + kHugePage - 1) & ~(kHugePage - 1), end = (data + t.nbytes()) & ~(kHugePage - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#endif
  return t;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FusedConvolution : public torch::autograd::Function<FusedConvolution> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& sh, const at::Tensor& w,
                            const at::Tensor& sender, const at::Tensor& receiver, int64_t num_receivers,
                            const c10::intrusive_ptr<Plan>& plan, const c10::intrusive_ptr<TensorProductRef>& tp) {
    ++g_calls.forward;
    const at::Tensor shc = sh.contiguous(), wc = w.contiguous(), sc = sender.contiguous(), rc = receiver.contiguous();
    const int64_t num_edges = sc.size(0);
    check_nodes(sc.data_ptr<int64_t>(), num_edges, x.size(0), "sender");
    const c10::intrusive_ptr<Grouping> by_receiver =
        group_edges(rc.data_ptr<int64_t>(), num_edges, num_receivers, "receiver");
    at::Tensor out = at::empty({num_receivers, plan->dim_out}, x.options()), xm;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_convolution_forward", [&] {
      xm = component_major<scalar_t>(plan->in_entries, x);
      const ForwardArgs<scalar_t> args{plan.get(),          plan->values<scalar_t>(), xm.data_ptr<scalar_t>(),
                                       shc.data_ptr<scalar_t>(), wc.data_ptr<scalar_t>(),  sc.data_ptr<int64_t>(),
                                       by_receiver.get(),   out.data_ptr<scalar_t>()};
      forward_kernel(args, entry_points_for<scalar_t>(*plan).first);
    });
    ctx->save_for_backward({x, sh, w, sender, receiver});
    keep_plan(ctx, plan);
    ctx->saved_data["tp"] = c10::IValue::make_capsule(tp);
    ctx->saved_data["num_receivers"] = num_receivers;
    // What the first-order backward reads again: the edges by receiver and x component-major.
    ctx->saved_data["by_receiver"] = c10::IValue::make_capsule(by_receiver);
    ctx->saved_data["x_component_major"] = xm;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &sh = saved[1], &w = saved[2], &sender = saved[3], &receiver = saved[4];
    const auto plan = kept_plan<Plan>(ctx);
    const int64_t num_receivers = ctx->saved_data["num_receivers"].toInt();
    const at::Tensor& g = grad_outputs[0];
    variable_list grads(8);  // one per argument of forward
    const bool want[3] = {ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2)};
    if (!g.defined() || !(want[0] || want[1] || want[2])) return grads;

    if (at::GradMode::is_enabled()) {
      ++g_calls.composite_backward;
      const auto tp = c10::static_intrusive_pointer_cast<TensorProductRef>(ctx->saved_data["tp"].toCapsule());
      const auto composite = [&](const std::vector<at::Tensor>& v) {
        return convolution_scatter_composite(*tp->tp, v[0], v[1], v[2], sender, receiver, num_receivers,
                                             plan->scale);
      };
      return composite_partials({x, sh, w}, {want[0], want[1], want[2]}, composite, g, grads.size());
    }

    ++g_calls.backward;
    const at::Tensor shc = sh.contiguous(), wc = w.contiguous(), sc = sender.contiguous();
    const auto by_receiver = c10::static_intrusive_pointer_cast<Grouping>(ctx->saved_data["by_receiver"].toCapsule());
    const at::Tensor xm = ctx->saved_data["x_component_major"].toTensor();
    at::Tensor grad_x = want[0] ? at::empty_like(x, at::MemoryFormat::Contiguous) : at::Tensor();
    // The kernel writes every row of grad_sh and grad_w.
    at::Tensor grad_sh = want[1] ? at::empty_like(shc) : at::Tensor();
    at::Tensor grad_w = want[2] ? empty_written_in_full(wc) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_convolution_backward", [&] {
      const at::Tensor gm = component_major<scalar_t>(plan->out_entries, g);
      auto ptr = [](at::Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
      const BackwardArgs<scalar_t> args{plan.get(),
                                        plan->values<scalar_t>(),
                                        xm.data_ptr<scalar_t>(),
                                        shc.data_ptr<scalar_t>(),
                                        wc.data_ptr<scalar_t>(),
                                        gm.data_ptr<scalar_t>(),
                                        sc.data_ptr<int64_t>(),
                                        by_receiver.get(),
                                        ptr(grad_sh),
                                        ptr(grad_w)};
      backward_kernel(args, x.size(0), ptr(grad_x), entry_points_for<scalar_t>(*plan).second);
    });
    grads[0] = grad_x;
    grads[1] = grad_sh;
    grads[2] = grad_w;
    return grads;
  }
};

// The radial convolution: the radial MLP evaluated inside the convolution's loops, a block of
// edges at a time. Materialised, the per-edge weights and their gradient are the convolution's
// largest operands (30,000 edges x 352 weights: 84 MB each way, streamed from memory); here the
// forward convolves with each block's weights while they are in the L2 cache (keeping them for
// the backward where autograd records the call), and the backward takes each block's weight
// gradient back through the net before it leaves the cache: it is never written out.

// The net as the blocks evaluate it, and the edges' inputs to it.
template <typename T>
struct RadialNet {
  RadialRows<T> layers;
  const T* embeddings;  // [E, h_0]
  const T* edge_scale;  // [E], or null
};

// Edges a block holds at most (unless a receiver alone has more): at 352 weights per edge its
// weights, their gradient and the hidden layers take about 1 MB of float64 (L2: 2 MB per core).
constexpr int64_t kEdgesPerBlock = 128;

// One thread's scratch for its blocks.
template <typename T>
struct RadialBlock {
  std::vector<T> rows;  // [n, h_0]: the block's embeddings, then their gradient
  std::vector<T> hidden[2];
  std::vector<T> weights, scaled, grad;  // [n, P]: raw (unless kept), times the edge scale, gradient

  static T* at_least(std::vector<T>& v, int64_t size) {
    if (static_cast<int64_t>(v.size()) < size) v.resize(size);
    return v.data();
  }
};

// What a forward with autograd keeps for the backward, row q for the edge at grouping position q
// (so that the backward reads them in order): the raw weights [E, P] and f'(z) of each hidden
// layer [E, h_k]. Their gradient is never materialised: the backward takes each block's through
// the net while it is in cache. Null: inference, the blocks' weights live in scratch.
template <typename T>
struct RadialKept {
  T* weights = nullptr;
  std::vector<T*> derivatives;
};

// The receivers [r0, r1) of a block: as many after r0 as hold kEdgesPerBlock edges, at least one.
inline int64_t block_end(const Grouping& g, int64_t r0, int64_t end) {
  int64_t r1 = r0 + 1;
  while (r1 < end && g.start[r1 + 1] - g.start[r0] <= kEdgesPerBlock) ++r1;
  return r1;
}

// The block's weights `raw` times the edge scales (into scratch), or `raw` itself without them.
template <typename T>
const T* scaled_by_edge(const RadialNet<T>& net, const int64_t* order, int64_t q0, int64_t n, const T* raw,
                        RadialBlock<T>& b) {
  if (!net.edge_scale) return raw;
  const int64_t width = net.layers.widths.back();
  T* scaled = RadialBlock<T>::at_least(b.scaled, n * width);
  for (int64_t r = 0; r < n; ++r) {
    const T s = net.edge_scale[order[q0 + r]];
    for (int64_t p = 0; p < width; ++p) scaled[r * width + p] = raw[r * width + p] * s;
  }
  return scaled;
}

// The weights of the n edges at grouping positions q0, … (times their edge scale), as radial_mlp
// (and the layer's product with the edge scale) computes each row, into `kept` where it is given
// (with the hidden layers' f'(z)), else into scratch.
template <typename T>
const T* block_weights(const RadialNet<T>& net, const int64_t* order, int64_t q0, int64_t n, RadialBlock<T>& b,
                       const RadialKept<T>& kept) {
  const std::vector<int64_t>& widths = net.layers.widths;
  const int64_t h0 = widths[0], width = widths.back();
  T* input = RadialBlock<T>::at_least(b.rows, n * h0);
  for (int64_t r = 0; r < n; ++r) std::copy_n(net.embeddings + order[q0 + r] * h0, h0, input + r * h0);
  T* raw = kept.weights ? kept.weights + q0 * width : RadialBlock<T>::at_least(b.weights, n * width);
  net.layers.forward(
      input, h0, n, [&](size_t k) { return RadialBlock<T>::at_least(b.hidden[k % 2], n * widths[k + 1]); },
      [&](size_t k) { return kept.weights ? kept.derivatives[k] + q0 * widths[k + 1] : nullptr; }, raw);
  return scaled_by_edge(net, order, q0, n, raw, b);
}

// From the block's weight gradient b.grad (of its raw weights `raw` times the edge scales): the
// edge scales' gradient (where wanted) and the embeddings' (where wanted), through the layers back
// with the kept derivatives.
template <typename T>
void block_backward(const RadialNet<T>& net, const RadialKept<T>& kept, const int64_t* order, int64_t q0, int64_t n,
                    const T* raw, RadialBlock<T>& b, T* grad_embeddings, T* grad_edge_scale) {
  const std::vector<int64_t>& widths = net.layers.widths;
  const int64_t h0 = widths[0], width = widths.back();
  T* g = b.grad.data();
  if (net.edge_scale)
    for (int64_t r = 0; r < n; ++r) {
      const int64_t e = order[q0 + r];
      if (grad_edge_scale) {
        T sum = 0;
        for (int64_t p = 0; p < width; ++p) sum += g[r * width + p] * raw[r * width + p];
        grad_edge_scale[e] = sum;
      }
      for (int64_t p = 0; p < width; ++p) g[r * width + p] *= net.edge_scale[e];
    }
  if (!grad_embeddings) return;
  net.layers.backward(
      g, width, n, [&](size_t k) -> const T* { return kept.derivatives[k - 1] + q0 * widths[k]; },
      [&](size_t k) { return RadialBlock<T>::at_least(b.hidden[k % 2], n * widths[k]); },
      RadialBlock<T>::at_least(b.rows, n * h0));
  for (int64_t r = 0; r < n; ++r) std::copy_n(b.rows.data() + r * h0, h0, grad_embeddings + order[q0 + r] * h0);
}

// The scaled weights behind a RadialNet and, for a backward, their transposes.
struct RadialTensors {
  std::vector<at::Tensor> scaled, transposed;
};

RadialTensors radial_tensors(const std::vector<at::Tensor>& weights, double kappa, bool transposed) {
  RadialTensors t;
  const std::vector<double> scales = radial_layer_scales(weights, kappa);
  for (size_t k = 0; k < weights.size(); ++k) {
    t.scaled.push_back(radial_scaled_weight(weights[k], scales[k], false));
    if (transposed) t.transposed.push_back(radial_scaled_weight(weights[k], scales[k], true));
  }
  return t;
}

template <typename T>
RadialNet<T> radial_net(const RadialTensors& t, ScaledActivation::Kind kind, const at::Tensor& embeddings,
                        const at::Tensor& edge_scale) {
  return {radial_rows<T>(t.scaled, t.transposed, kind), embeddings.data_ptr<T>(),
          edge_scale.defined() ? edge_scale.data_ptr<T>() : nullptr};
}

template <typename T>
RadialKept<T> radial_kept(const at::Tensor& weights, const std::vector<at::Tensor>& derivatives) {
  RadialKept<T> kept;
  if (!weights.defined()) return kept;
  kept.weights = weights.data_ptr<T>();
  for (const at::Tensor& d : derivatives) kept.derivatives.push_back(d.data_ptr<T>());
  return kept;
}

// The composite path of the radial convolution: the net, the edge scale, the convolution.
at::Tensor radial_convolution_composite(const e3nn::TensorProductImpl& tp, const e3nn::ScalarActivation& act,
                                        const at::Tensor& embeddings, const std::vector<at::Tensor>& weights,
                                        const at::Tensor& edge_scale, const at::Tensor& node_features,
                                        const at::Tensor& edge_attrs, const at::Tensor& sender,
                                        const at::Tensor& receiver, int64_t num_receivers, double scale) {
  at::Tensor w = e3nn::fully_connected_net(embeddings, weights, act);
  if (edge_scale.defined()) w = w * edge_scale;
  return convolution_scatter_composite(tp, node_features, edge_attrs, w, sender, receiver, num_receivers, scale);
}

KernelCallCounts g_radial_calls;

// Inputs: embeddings, node features, edge attributes, then in one list (one gradient each) the
// layers' weights and, where there is one, the edge scale: autograd takes no undefined input.
// `keep`: the forward keeps the weights and derivatives a backward reads (RadialKept).
class FusedRadialConvolution : public torch::autograd::Function<FusedRadialConvolution> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& embeddings, const at::Tensor& x,
                            const at::Tensor& sh, at::TensorList weights_and_scale, int64_t num_layers,
                            const at::Tensor& sender, const at::Tensor& receiver, int64_t num_receivers,
                            const c10::intrusive_ptr<Plan>& plan, const c10::intrusive_ptr<TensorProductRef>& tp,
                            const std::string& activation, ScaledActivation::Kind kind, double kappa, bool keep) {
    ++g_radial_calls.forward;
    const std::vector<at::Tensor> weights(weights_and_scale.begin(), weights_and_scale.begin() + num_layers);
    const at::Tensor edge_scale =
        static_cast<int64_t>(weights_and_scale.size()) > num_layers ? weights_and_scale[num_layers] : at::Tensor();
    const at::Tensor ec = embeddings.contiguous(), shc = sh.contiguous(), sc = sender.contiguous(),
                     rc = receiver.contiguous();
    const at::Tensor scale_per_edge = edge_scale.defined() ? edge_scale.reshape({-1}).contiguous() : at::Tensor();
    const int64_t num_edges = sc.size(0);
    check_nodes(sc.data_ptr<int64_t>(), num_edges, x.size(0), "sender");
    const c10::intrusive_ptr<Grouping> by_receiver =
        group_edges(rc.data_ptr<int64_t>(), num_edges, num_receivers, "receiver");
    const RadialTensors layers = radial_tensors(weights, kappa, /*transposed=*/false);
    at::Tensor out = at::empty({num_receivers, plan->dim_out}, x.options()), xm;
    at::Tensor kept_weights;
    std::vector<at::Tensor> kept_derivatives;
    if (keep) {
      kept_weights = empty_written_in_full(at::empty({num_edges, plan->weight_numel}, x.options()));
      for (size_t k = 0; k + 1 < layers.scaled.size(); ++k)
        kept_derivatives.push_back(at::empty({num_edges, layers.scaled[k].size(1)}, x.options()));
    }
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_radial_convolution_forward", [&] {
      using T = scalar_t;
      xm = component_major<T>(plan->in_entries, x);
      const RadialNet<T> net = radial_net<T>(layers, kind, ec, scale_per_edge);
      const RadialKept<T> kept = radial_kept<T>(kept_weights, kept_derivatives);
      const ForwardArgs<T> args{plan.get(),      plan->values<T>(), xm.data_ptr<T>(), shc.data_ptr<T>(), nullptr,
                                sc.data_ptr<int64_t>(), by_receiver.get(), out.data_ptr<T>()};
      const ForwardRows<T> rows = entry_points_for<T>(*plan).first;
      forward_kernel(args, [&](const ForwardArgs<T>& a, int64_t begin, int64_t end, T* acc, T* scratch) {
        RadialBlock<T> block;
        const Grouping& g = *a.by_receiver;
        for (int64_t r0 = begin, r1; r0 < end; r0 = r1) {
          r1 = block_end(g, r0, end);
          ForwardArgs<T> in_block = a;
          const int64_t q0 = g.start[r0], n = g.start[r1] - q0;
          in_block.w = n > 0 ? block_weights(net, g.order.data(), q0, n, block, kept) : nullptr;
          in_block.weights_from = q0;
          rows(in_block, r0, r1, acc, scratch);
        }
      });
    });
    std::vector<at::Tensor> saved{embeddings, x, sh, sender, receiver};
    saved.insert(saved.end(), weights_and_scale.begin(), weights_and_scale.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["num_layers"] = num_layers;
    keep_plan(ctx, plan);
    ctx->saved_data["tp"] = c10::IValue::make_capsule(tp);
    ctx->saved_data["num_receivers"] = num_receivers;
    ctx->saved_data["by_receiver"] = c10::IValue::make_capsule(by_receiver);
    ctx->saved_data["x_component_major"] = xm;
    ctx->saved_data["activation"] = activation;
    ctx->saved_data["kind"] = static_cast<int64_t>(kind);
    ctx->saved_data["kappa"] = kappa;
    ctx->saved_data["kept_weights"] = kept_weights;
    ctx->saved_data["kept_derivatives"] = kept_derivatives;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &embeddings = saved[0], &x = saved[1], &sh = saved[2], &sender = saved[3], &receiver = saved[4];
    const auto num_layers = static_cast<size_t>(ctx->saved_data["num_layers"].toInt());
    const std::vector<at::Tensor> weights(saved.begin() + 5, saved.begin() + 5 + num_layers);
    const at::Tensor edge_scale = saved.size() > 5 + num_layers ? saved.back() : at::Tensor();
    // Inputs in the order of forward's: embeddings, x, sh, the weights, the edge scale if any.
    const size_t num_inputs = saved.size() - 2;
    variable_list grads(num_inputs + 10);  // and the 10 other arguments
    std::vector<bool> want(num_inputs);
    for (size_t k = 0; k < num_inputs; ++k) want[k] = ctx->needs_input_grad(k);
    const bool want_scale = edge_scale.defined() && want.back();
    const at::Tensor& g = grad_outputs[0];
    if (!g.defined() || std::none_of(want.begin(), want.end(), [](bool w) { return w; })) return grads;
    const auto plan = kept_plan<Plan>(ctx);
    const int64_t num_receivers = ctx->saved_data["num_receivers"].toInt();

    // Second derivatives (create_graph) and the weights' gradients (training) differentiate the
    // composite path; MD asks for neither.
    const bool weight_gradients = std::any_of(want.begin() + 3, want.begin() + 3 + num_layers, [](bool w) { return w; });
    if (at::GradMode::is_enabled() || weight_gradients) {
      ++g_radial_calls.composite_backward;
      const bool create_graph = at::GradMode::is_enabled();
      const at::AutoGradMode grad_mode(true);
      const auto tp = c10::static_intrusive_pointer_cast<TensorProductRef>(ctx->saved_data["tp"].toCapsule());
      const e3nn::ScalarActivation act(ctx->saved_data["activation"].toStringRef(), /*normalize2mom=*/true);
      std::vector<at::Tensor> inputs{embeddings, x, sh};
      inputs.insert(inputs.end(), weights.begin(), weights.end());
      if (edge_scale.defined()) inputs.push_back(edge_scale);
      const auto composite = [&](const std::vector<at::Tensor>& v) {
        return radial_convolution_composite(*tp->tp, act, v[0], {v.begin() + 3, v.begin() + 3 + num_layers},
                                            edge_scale.defined() ? v.back() : at::Tensor(), v[1], v[2], sender,
                                            receiver, num_receivers, plan->scale);
      };
      std::vector<at::Tensor> partials = composite_partials(inputs, want, composite, g, grads.size());
      if (!create_graph)
        for (at::Tensor& t : partials)
          if (t.defined()) t = t.detach();
      return partials;
    }

    ++g_radial_calls.backward;
    const at::Tensor ec = embeddings.contiguous(), shc = sh.contiguous(), sc = sender.contiguous();
    const at::Tensor scale_per_edge = edge_scale.defined() ? edge_scale.reshape({-1}).contiguous() : at::Tensor();
    const auto by_receiver = c10::static_intrusive_pointer_cast<Grouping>(ctx->saved_data["by_receiver"].toCapsule());
    const at::Tensor xm = ctx->saved_data["x_component_major"].toTensor();
    const RadialTensors layers = radial_tensors(weights, ctx->saved_data["kappa"].toDouble(), want[0]);
    const at::Tensor kept_weights = ctx->saved_data["kept_weights"].toTensor();
    const std::vector<at::Tensor> kept_derivatives = ctx->saved_data["kept_derivatives"].toTensorVector();
    TORCH_CHECK(kept_weights.defined(), "radial convolution: a backward of a forward that kept nothing");
    const auto kind = static_cast<ScaledActivation::Kind>(ctx->saved_data["kind"].toInt());
    at::Tensor grad_embeddings = want[0] ? at::empty({ec.size(0), ec.size(1)}, ec.options()) : at::Tensor();
    at::Tensor grad_x = want[1] ? at::empty_like(x, at::MemoryFormat::Contiguous) : at::Tensor();
    at::Tensor grad_sh = want[2] ? at::empty_like(shc) : at::Tensor();
    at::Tensor grad_scale = want_scale ? at::empty_like(scale_per_edge) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_radial_convolution_backward", [&] {
      using T = scalar_t;
      const at::Tensor gm = component_major<T>(plan->out_entries, g);
      auto ptr = [](at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; };
      const RadialNet<T> net = radial_net<T>(layers, kind, ec, scale_per_edge);
      const RadialKept<T> kept = radial_kept<T>(kept_weights, kept_derivatives);
      T *grad_e = ptr(grad_embeddings), *grad_s = ptr(grad_scale);
      const bool weights_gradient = grad_e || grad_s;
      const BackwardArgs<T> args{plan.get(), plan->values<T>(), xm.data_ptr<T>(), shc.data_ptr<T>(), nullptr,
                                 gm.data_ptr<T>(), sc.data_ptr<int64_t>(), by_receiver.get(), ptr(grad_sh), nullptr};
      const BackwardRows<T> rows = entry_points_for<T>(*plan).second;
      backward_kernel(args, x.size(0), ptr(grad_x),
                      [&](const BackwardArgs<T>& a, int64_t begin, int64_t end, T* part, T* scratch) {
                        RadialBlock<T> block;
                        const Grouping& gr = *a.by_receiver;
                        for (int64_t r0 = begin, r1; r0 < end; r0 = r1) {
                          r1 = block_end(gr, r0, end);
                          const int64_t q0 = gr.start[r0], n = gr.start[r1] - q0;
                          if (n == 0) continue;
                          const T* raw = kept.weights + q0 * plan->weight_numel;
                          BackwardArgs<T> in_block = a;
                          in_block.w = scaled_by_edge(net, gr.order.data(), q0, n, raw, block);
                          in_block.grad_w =
                              weights_gradient ? RadialBlock<T>::at_least(block.grad, n * plan->weight_numel) : nullptr;
                          in_block.weights_from = q0;
                          rows(in_block, r0, r1, part, scratch);
                          if (weights_gradient)
                            block_backward(net, kept, gr.order.data(), q0, n, raw, block, grad_e, grad_s);
                        }
                      });
    });
    grads[0] = grad_embeddings;
    grads[1] = grad_x;
    grads[2] = grad_sh;
    if (want_scale) grads[num_inputs - 1] = grad_scale.view_as(edge_scale);
    return grads;
  }
};

// w undefined: the radial convolution's, which has no weights tensor.
void check_shapes(const e3nn::TensorProductImpl& tp, const at::Tensor& x, const at::Tensor& sh, const at::Tensor& w,
                  const at::Tensor& sender, const at::Tensor& receiver) {
  const int64_t num_edges = sender.dim() == 1 ? sender.size(0) : -1;
  auto shape_error = [&](const std::string& what) {
    throw Error("convolution " + tp.irreps_in1().to_string() + " x " + tp.irreps_in2().to_string() + ": " + what);
  };
  if (num_edges < 0 || receiver.dim() != 1 || receiver.size(0) != num_edges)
    shape_error("sender and receiver must be 1-d with one entry per edge");
  if (sender.scalar_type() != at::kLong || receiver.scalar_type() != at::kLong)
    shape_error("sender and receiver must be int64");
  if (x.dim() != 2 || x.size(1) != tp.irreps_in1().dim())
    shape_error("node features must be [N, " + std::to_string(tp.irreps_in1().dim()) + "], got " +
                c10::str(x.sizes()));
  if (sh.dim() != 2 || sh.size(0) != num_edges || sh.size(1) != tp.irreps_in2().dim())
    shape_error("edge attributes must be [E=" + std::to_string(num_edges) + ", " +
                std::to_string(tp.irreps_in2().dim()) + "], got " + c10::str(sh.sizes()));
  if (w.defined() && (w.dim() != 2 || w.size(0) != num_edges || w.size(1) != tp.weight_numel()))
    shape_error("weights must be [E=" + std::to_string(num_edges) + ", " + std::to_string(tp.weight_numel()) +
                "], got " + c10::str(w.sizes()));
}

}  // namespace

bool fused_kernel_supports(const e3nn::TensorProductImpl& tp) { return plan_supports(tp); }


KernelCounters kernel_counters() {
  return g_calls.snapshot();
}

at::Tensor convolution_scatter_composite(const e3nn::TensorProductImpl& tp, const at::Tensor& node_features,
                                         const at::Tensor& edge_attrs, const at::Tensor& weight,
                                         const at::Tensor& sender, const at::Tensor& receiver,
                                         int64_t num_receivers, double scale) {
  const at::Tensor messages = tp.forward(node_features.index_select(0, sender), edge_attrs, weight);
  const at::Tensor summed = e3nn::scatter_sum(messages, receiver, num_receivers);
  return scale == 1.0 ? summed : summed * scale;
}

at::Tensor convolution_scatter(const e3nn::TensorProductImpl& tp, const at::Tensor& node_features,
                               const at::Tensor& edge_attrs, const at::Tensor& weight, const at::Tensor& sender,
                               const at::Tensor& receiver, int64_t num_receivers, double scale) {
  check_shapes(tp, node_features, edge_attrs, weight, sender, receiver);
  if (!kernels_take({node_features, edge_attrs, weight}) || !plan_supports(tp))
    return convolution_scatter_composite(tp, node_features, edge_attrs, weight, sender, receiver, num_receivers,
                                         scale);
  return FusedConvolution::apply(node_features, edge_attrs, weight, sender, receiver, num_receivers,
                                 plan_cache().get(tp, scale), c10::make_intrusive<TensorProductRef>(shared_product(tp)));
}

KernelCounters radial_convolution_counters() { return g_radial_calls.snapshot(); }

at::Tensor radial_convolution_scatter(const e3nn::TensorProductImpl& tp, const e3nn::FullyConnectedNetImpl& fc,
                                      const at::Tensor& edge_embeddings, const at::Tensor& weight_columns,
                                      const at::Tensor& edge_scale, const at::Tensor& node_features,
                                      const at::Tensor& edge_attrs, const at::Tensor& sender,
                                      const at::Tensor& receiver, int64_t num_receivers, double scale) {
  std::vector<at::Tensor> weights = fc.weights();
  if (weight_columns.defined()) weights.back() = weights.back().index_select(1, weight_columns);
  const std::optional<ScaledActivation> act = scaled_activation(fc.activation());
  const int64_t num_edges = sender.dim() == 1 ? sender.size(0) : -1;
  bool fused = act && plan_supports(tp) && edge_embeddings.dim() == 2 && edge_embeddings.size(0) == num_edges &&
               edge_embeddings.size(1) == weights.front().size(0) && weights.back().size(1) == tp.weight_numel() &&
               (!edge_scale.defined() || edge_scale.sizes() == at::IntArrayRef{num_edges, 1}) &&
               kernels_take({edge_embeddings, node_features, edge_attrs, edge_scale}) &&
               radial_layers_blockwise(edge_embeddings, weights);
  for (const at::Tensor& w : weights) fused = fused && kernels_take({edge_embeddings, w});
  if (!fused) {
    at::Tensor weight = radial_mlp(fc, edge_embeddings, weight_columns);
    if (edge_scale.defined()) weight = weight * edge_scale;
    return convolution_scatter(tp, node_features, edge_attrs, weight, sender, receiver, num_receivers, scale);
  }
  check_shapes(tp, node_features, edge_attrs, at::Tensor(), sender, receiver);
  const auto num_layers = static_cast<int64_t>(weights.size());
  if (edge_scale.defined()) weights.push_back(edge_scale);
  // A backward will need what the forward keeps where autograd records the call.
  const bool keep =
      at::GradMode::is_enabled() &&
      (std::any_of(weights.begin(), weights.end(), [](const at::Tensor& t) { return t.requires_grad(); }) ||
       edge_embeddings.requires_grad() || node_features.requires_grad() || edge_attrs.requires_grad());
  return FusedRadialConvolution::apply(edge_embeddings, node_features, edge_attrs, at::TensorList(weights), num_layers,
                                       sender, receiver, num_receivers, plan_cache().get(tp, scale),
                                       c10::make_intrusive<TensorProductRef>(shared_product(tp)),
                                       fc.activation().name(), act->kind, fc.activation().scale(), keep);
}

ConvolutionFlops convolution_flops(const e3nn::TensorProductImpl& tp, int64_t num_edges) {
  if (!plan_supports(tp)) return {};
  const c10::intrusive_ptr<Plan> plan = make_plan(tp, 1.0);
  int64_t forward = 0, backward = 0;
  for (const Plan::Path& p : plan->paths) {
    const int64_t entries = p.k_begin.back() - p.k_begin.front();
    // per entry: the coefficient, then t += c·x (forward); and t += c·x, c·w·g into x, and
    // v·Σ_u x·(w·g) into sh, a dot product over the copies (backward)
    forward += entries * (1 + 2 * p.mul) + p.d3 * 2 * p.mul;
    backward += entries * (4 + 6 * p.mul) + p.d3 * 3 * p.mul;
  }
  return {forward * num_edges, backward * num_edges};
}

}  // namespace klay::kernels
