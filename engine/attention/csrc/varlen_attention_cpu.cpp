// Attention over a packed batch of variable-length sequences, bfloat16 on AMX through ATen's brgemm.
//
// One task per (sequence, key/value head), pulled by the threads longest first. A task packs its keys and values
// once into the layout AMX reads (VNNI pairs), then for each query head of its group and each block of 32 query
// rows: S = Q K^T (fp32) over the keys the block sees (all, the causal prefix, or a local window), softmax in fp32,
// O = P V with P in bf16, O scaled by 1/sum and written in place. No
// padding to a common length, no gather into a padded batch and no scatter back: each sequence is read where it
// lies. Every matmul has one of a few fixed shapes (32-key chunks), so oneDNN generates a handful of kernels once
// whatever the lengths. A sequence's output depends on its own rows only, computed by one thread.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/native/CPUBlas.h>
#include <immintrin.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

namespace {

using at::BFloat16;

constexpr int64_t kRows = 32;   // query rows per matmul
constexpr int64_t kChunk = 32;  // keys per matmul; a sequence's keys are padded to a multiple of it

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// 16 x 16 32-bit words held in 16 registers, transposed in place.
void transpose16x16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // each 128-bit lane now holds a transposed 4 x 4 tile: move the lanes into place
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

struct Shapes {
  int64_t ldq, ldk, ldv, ldo;  // row strides of q, k, v and the output, in elements
  int64_t group;               // query heads per key/value head
  int64_t d;                   // head size
  int64_t vb;                  // columns of V per packed block
  int64_t left, right;  // row i sees keys i - left .. i + right (causal: right = 0; no window: both unbounded)
  float scale;
};

struct Task {
  int64_t start, len, kv_head;
};

// What one thread reuses from task to task.
struct Scratch {
  std::vector<BFloat16> keys, values, queries, weights;
  std::vector<float> scores, out;
  float inv_sum[kRows];
};

// K^T in chunks of kChunk keys, each [d/2][kChunk] 32-bit words holding (K[j][2p], K[j][2p+1]): the VNNI layout of
// a bf16 right-hand matrix. That is the transpose of K read as (len x d/2) words, 16 x 16 words at a time.
void pack_keys(const BFloat16* k, int64_t ldk, int64_t len, int64_t padded, int64_t d, BFloat16* out) {
  auto* words = reinterpret_cast<uint32_t*>(out);
  for (int64_t j0 = 0; j0 < padded; j0 += 16) {
    uint32_t* chunk = words + (j0 / kChunk) * (d / 2) * kChunk + j0 % kChunk;
    for (int64_t p0 = 0; p0 < d / 2; p0 += 16) {
      __m512i r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = j0 + i < len ? _mm512_loadu_si512(k + (j0 + i) * ldk + 2 * p0) : _mm512_setzero_si512();
      transpose16x16(r);
      for (int i = 0; i < 16; ++i) _mm512_storeu_si512(chunk + (p0 + i) * kChunk, r[i]);
    }
  }
}

// V in blocks of vb columns, each [padded/2][vb] 32-bit words holding (V[2i][c], V[2i+1][c]); rows past len are 0.
void pack_values(const BFloat16* v, int64_t ldv, int64_t len, int64_t padded, int64_t d, int64_t vb, BFloat16* out) {
  const auto* halves = reinterpret_cast<const uint16_t*>(v);
  auto* words = reinterpret_cast<uint32_t*>(out);
  for (int64_t j = 0; j < padded; j += 2) {
    const uint16_t* even = j < len ? halves + j * ldv : nullptr;
    const uint16_t* odd = j + 1 < len ? halves + (j + 1) * ldv : nullptr;
    for (int64_t cb = 0; cb < d; cb += vb) {
      uint32_t* dst = words + cb * padded / 2 + (j / 2) * vb;
      for (int64_t c = 0; c < vb; ++c)
        dst[c] = (even ? even[cb + c] : 0u) | (static_cast<uint32_t>(odd ? odd[cb + c] : 0u) << 16);
    }
  }
}

// Row r of the scores -> unnormalized bf16 weights exp(scale * (s - max)) over its keys [first, end), zero on the
// rest of [from, cols); returns 1 / their sum. Scores and weights are stored chunk by chunk: [chunk][kRows][kChunk].
float softmax_row(float* scores, BFloat16* weights, int64_t r, int64_t first, int64_t end, int64_t from, int64_t cols,
                  float scale) {
  const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
  auto at = [r](int64_t j) { return (j / kChunk) * kRows * kChunk + r * kChunk + j % kChunk; };
  // the lanes of keys j .. j + 15 inside [first, end)
  auto lanes = [first, end](int64_t j) -> __mmask16 {
    const int64_t lo = std::max<int64_t>(first - j, 0), hi = std::min<int64_t>(end - j, 16);
    return hi <= lo ? 0 : static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
  };
  __m512 vmax = neg_inf;
  for (int64_t j = from; j < cols; j += 16) {
    if (const __mmask16 keep = lanes(j)) {
      const __m512 x = _mm512_mask_loadu_ps(neg_inf, keep, scores + at(j));
      _mm512_storeu_ps(scores + at(j), x);  // masked keys now score -inf: their weight is exp(-inf) = 0
      vmax = _mm512_max_ps(vmax, x);
    }
  }
  const __m512 row_max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax)), vscale = _mm512_set1_ps(scale);
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t j = from; j < cols; j += 16) {
    auto* dst = reinterpret_cast<__m256i*>(weights + at(j));
    if (!lanes(j)) {
      _mm256_storeu_si256(dst, _mm256_setzero_si256());
      continue;
    }
    const __m512 x = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(scores + at(j)), row_max), vscale);
    const __m512 e = at::vec::Vectorized<float>(x).exp_u20();
    vsum = _mm512_add_ps(vsum, e);
    _mm256_storeu_si256(dst, (__m256i)_mm512_cvtneps_pbh(e));
  }
  return 1.f / _mm512_reduce_add_ps(vsum);
}

void run_task(const Task& t, const BFloat16* q, const BFloat16* k, const BFloat16* v, BFloat16* out, const Shapes& s,
              Scratch& w) {
  const int64_t d = s.d, padded = round_up(t.len, kChunk);
  w.keys.resize(padded * d);
  w.values.resize(padded * d);
  w.scores.resize(padded * kRows);
  w.weights.resize(padded * kRows);
  w.queries.resize(kRows * d);
  w.out.resize(kRows * d);
  pack_keys(k + t.start * s.ldk + t.kv_head * d, s.ldk, t.len, padded, d, w.keys.data());
  pack_values(v + t.start * s.ldv + t.kv_head * d, s.ldv, t.len, padded, d, s.vb, w.values.data());
  for (int64_t g = 0; g < s.group; ++g) {
    const int64_t head = t.kv_head * s.group + g;
    const BFloat16* qh = q + t.start * s.ldq + head * d;
    for (int64_t i0 = 0; i0 < t.len; i0 += kRows) {
      const int64_t rows = std::min(kRows, t.len - i0);
      // a whole block of queries is read in place; a last, partial one is copied next to zero rows
      const BFloat16* a = qh + i0 * s.ldq;
      int64_t lda = s.ldq;
      if (rows < kRows) {
        std::fill(w.queries.begin(), w.queries.end(), BFloat16(0.f));
        for (int64_t r = 0; r < rows; ++r) std::memcpy(&w.queries[r * d], a + r * s.ldq, d * sizeof(BFloat16));
        a = w.queries.data();
        lda = d;
      }
      // the keys any row of the block sees, widened to whole chunks
      const int64_t from = std::max<int64_t>(i0 - s.left, 0) / kChunk * kChunk;
      const int64_t cols = round_up(std::min(t.len, i0 + rows + std::min(s.right, t.len)), kChunk);
      for (int64_t c = from; c < cols; c += kChunk)
        at::native::cpublas::brgemm(kRows, kChunk, d, lda, kChunk, kChunk, false, a, w.keys.data() + c * d,
                                    w.scores.data() + c * kRows);
      // rows past the sequence's end are left as they are: a matmul's output row reads only its own input row,
      // and those output rows are never written back
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = i0 + r;
        const int64_t first = std::max<int64_t>(i - s.left, 0), end = std::min(t.len, i + 1 + std::min(s.right, t.len));
        w.inv_sum[r] = softmax_row(w.scores.data(), w.weights.data(), r, first, end, from, cols, s.scale);
      }
      for (int64_t cb = 0; cb < d; cb += s.vb)
        for (int64_t c = from; c < cols; c += kChunk)
          at::native::cpublas::brgemm(kRows, s.vb, kChunk, kChunk, s.vb, d, c > from, w.weights.data() + c * kRows,
                                      w.values.data() + cb * padded + c * s.vb, w.out.data() + cb);
      for (int64_t r = 0; r < rows; ++r) {
        BFloat16* dst = out + (t.start + i0 + r) * s.ldo + head * d;
        const __m512 inv = _mm512_set1_ps(w.inv_sum[r]);
        for (int64_t c = 0; c < d; c += 16) {
          const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(&w.out[r * d + c]), inv);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c), (__m256i)_mm512_cvtneps_pbh(x));
        }
      }
    }
  }
}

at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& cu_seqlens, bool causal, double scale, int64_t window_left,
                            int64_t window_right) {
  for (const auto* x : {&q, &k, &v}) {
    TORCH_CHECK(x->device().is_cpu() && x->scalar_type() == at::kBFloat16 && x->dim() == 3, "q, k, v: CPU bf16 3-D");
    TORCH_CHECK(x->stride(2) == 1 && x->stride(1) == x->size(2), "q, k, v: each token's heads side by side");
  }
  const int64_t tokens = q.size(0), heads = q.size(1), d = q.size(2), kv_heads = k.size(1);
  TORCH_CHECK(k.size(0) == tokens && v.size(0) == tokens && k.size(2) == d && v.size(2) == d && v.size(1) == kv_heads);
  TORCH_CHECK(d % 32 == 0 && kv_heads > 0 && heads % kv_heads == 0, "head size a multiple of 32, whole GQA groups");
  const auto cu = cu_seqlens.to(at::kCPU, at::kLong).contiguous();
  const int64_t* bounds = cu.const_data_ptr<int64_t>();
  const int64_t seqs = cu.numel() - 1;
  TORCH_CHECK(seqs >= 0 && (seqs == 0 || (bounds[0] == 0 && bounds[seqs] == tokens)), "cu_seqlens must span q");
  auto out = at::empty({tokens, heads * d}, q.options());
  std::vector<Task> tasks;
  for (int64_t i = 0; i < seqs; ++i) {
    TORCH_CHECK(bounds[i + 1] >= bounds[i], "cu_seqlens must not decrease");
    if (bounds[i + 1] > bounds[i])
      for (int64_t h = 0; h < kv_heads; ++h) tasks.push_back({bounds[i], bounds[i + 1] - bounds[i], h});
  }
  // longest first, pulled one at a time: the threads finish together whatever the lengths
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.len > b.len; });
  // a negative bound is no bound: as wide as the longest sequence can use
  const int64_t left = window_left < 0 ? tokens : window_left;
  const int64_t right = causal ? 0 : (window_right < 0 ? tokens : window_right);
  const Shapes shapes{q.stride(0), k.stride(0), v.stride(0), heads * d, heads / kv_heads, d, d % 64 == 0 ? 64 : 32,
                      left,        right,       static_cast<float>(scale)};
  const auto* qp = q.const_data_ptr<BFloat16>();
  const auto* kp = k.const_data_ptr<BFloat16>();
  const auto* vp = v.const_data_ptr<BFloat16>();
  auto* op = out.data_ptr<BFloat16>();
  std::atomic<int64_t> next{0};
  const auto count = static_cast<int64_t>(tasks.size());
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    Scratch scratch;
    for (int64_t i; (i = next.fetch_add(1)) < count;) run_task(tasks[i], qp, kp, vp, op, shapes, scratch);
    at::native::cpublas::brgemm_release();
  });
  return out;
}

// Whether oneDNN can run bf16 brgemm with packed (VNNI) operands on this CPU: AMX.
bool supported() { return at::native::cpublas::could_pack(at::kBFloat16); }

}  // namespace

TORCH_LIBRARY(embedserve_cpu, m) {
  m.def(
      "varlen_attention(Tensor q, Tensor k, Tensor v, Tensor cu_seqlens, bool causal, float scale, "
      "int window_left=-1, int window_right=-1) -> Tensor");
  m.def("supported() -> bool", &supported);
}

TORCH_LIBRARY_IMPL(embedserve_cpu, CPU, m) { m.impl("varlen_attention", &varlen_attention); }
