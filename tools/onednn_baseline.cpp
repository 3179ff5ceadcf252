#include "onednn_baseline.h"

#ifdef DWCONV_WITH_ONEDNN

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace dwconv::cli {

bool onednn_available() { return true; }

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

bool is_ref(const std::string& impl) {
  return impl.find("ref") != std::string::npos || impl.find("gemm") != std::string::npos;
}

// Short description of a memory desc's format: "nchw", "nhwc", "nChw16c" or "blocked".
std::string fmt_name(const memory::desc& md) {
  const auto& d = md.data;
  if (d.format_kind != dnnl_blocked) return "?";
  const auto& b = d.format_desc.blocking;
  if (b.inner_nblks == 1 && d.ndims == 4) return "nChw" + std::to_string(b.inner_blks[0]) + "c";
  if (b.inner_nblks > 0) return "blocked";
  if (d.ndims == 4) {
    if (b.strides[1] == 1) return "nhwc";
    if (b.strides[3] == 1) return "nchw";
  }
  return "plain";
}

struct Conv {
  memory::dims src_dims, wei_dims, bias_dims, dst_dims, strides, dilates, pad_l, pad_r;
};

Conv make_conv(const Shape& s) {
  Conv c;
  c.src_dims = {s.n, s.c, s.h, s.w};
  c.wei_dims = {s.c, s.multiplier, 1, s.kh, s.kw};
  c.bias_dims = {s.out_c()};
  c.dst_dims = {s.n, s.out_c(), s.out_h(), s.out_w()};
  c.strides = {s.stride_h, s.stride_w};
  c.dilates = {s.dil_h - 1, s.dil_w - 1};
  c.pad_l = {s.pad_top, s.pad_left};
  c.pad_r = {s.pad_bottom, s.pad_right};
  return c;
}

struct Prims {
  dnnl::convolution_forward::primitive_desc fwd;
  dnnl::convolution_backward_data::primitive_desc bwd_data;
  dnnl::convolution_backward_weights::primitive_desc bwd_wei;
  bool has_fwd = false, has_data = false, has_wei = false;
  std::string impl;
};

// Builds the primitive descriptors a pass needs with activations in act_tag
// (tag::any for oneDNN's choice). Throws dnnl::error when oneDNN has none.
Prims make_prims(const dnnl::engine& eng, const Conv& c, dt type, tag act_tag, bool need_fwd, bool need_data,
                 bool need_wei, bool wei_bias) {
  Prims p;
  const memory::desc src(c.src_dims, type, act_tag), dst(c.dst_dims, type, act_tag);
  const memory::desc wei(c.wei_dims, type, tag::any);
  // The bias: same type, else f32 (bf16 convolutions take an f32 bias).
  dnnl::convolution_forward::primitive_desc fwd;
  std::string err;
  bool ok = false;
  for (dt bt : {type, dt::f32}) {
    try {
      const memory::desc bias(c.bias_dims, bt, tag::x);
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src,
                                        wei, bias, dst, c.strides, c.dilates, c.pad_l, c.pad_r);
      fwd = dnnl::convolution_forward::primitive_desc(d, eng);
      ok = true;
      break;
    } catch (const dnnl::error& e) {
      err = e.what();
    }
  }
  if (!ok) throw std::runtime_error("forward: " + err);
  p.fwd = fwd;
  p.has_fwd = need_fwd;
  if (need_fwd) p.impl += std::string("fwd:") + fwd.impl_info_str() + " " + fmt_name(fwd.src_desc());
  if (need_data) {
    const memory::desc dsrc(c.src_dims, type, act_tag), ddst(c.dst_dims, type, act_tag);
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, dsrc, wei, ddst, c.strides,
                                            c.dilates, c.pad_l, c.pad_r);
    try {
      p.bwd_data = dnnl::convolution_backward_data::primitive_desc(d, eng, fwd);
    } catch (const dnnl::error& e) {
      throw std::runtime_error(std::string("backward data: ") + e.what());
    }
    p.has_data = true;
    p.impl += std::string(p.impl.empty() ? "" : ", ") + "bwd_d:" + p.bwd_data.impl_info_str() + " " +
              fmt_name(p.bwd_data.diff_src_desc());
  }
  if (need_wei) {
    ok = false;
    for (dt wt : {type, dt::f32}) {
      try {
        const memory::desc src2(c.src_dims, type, act_tag), ddst(c.dst_dims, type, act_tag);
        const memory::desc dwei(c.wei_dims, wt, tag::any);
        if (wei_bias) {
          const memory::desc dbias(c.bias_dims, wt, tag::x);
          dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, src2, dwei, dbias, ddst,
                                                     c.strides, c.dilates, c.pad_l, c.pad_r);
          p.bwd_wei = dnnl::convolution_backward_weights::primitive_desc(d, eng, fwd);
        } else {
          dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, src2, dwei, ddst,
                                                     c.strides, c.dilates, c.pad_l, c.pad_r);
          p.bwd_wei = dnnl::convolution_backward_weights::primitive_desc(d, eng, fwd);
        }
        ok = true;
        break;
      } catch (const dnnl::error& e) {
        err = e.what();
      }
    }
    if (!ok) throw std::runtime_error("backward weights: " + err);
    p.has_wei = true;
    p.impl += std::string(p.impl.empty() ? "" : ", ") + "bwd_w:" + p.bwd_wei.impl_info_str() + " " +
              fmt_name(p.bwd_wei.src_desc());
  }
  return p;
}

bool any_ref(const Prims& p) { return is_ref(p.impl); }

// Random user data in the user's layout, reordered into oneDNN's format.
memory make_filled(const dnnl::engine& eng, dnnl::stream& strm, const memory::desc& target,
                   const memory::dims& dims, tag user_tag, std::mt19937& rng) {
  memory m(target, eng);
  const memory::desc user_f32(dims, dt::f32, user_tag);
  memory user(user_f32, eng);
  float* d = static_cast<float*>(user.get_data_handle());
  const size_t n = user_f32.get_size() / sizeof(float);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (size_t i = 0; i < n; ++i) d[i] = u(rng);
  dnnl::reorder(user, m).execute(strm, user, m);  // converts f32 -> target type and format
  strm.wait();
  return m;
}

memory clone(const dnnl::engine& eng, const memory& src) {
  memory m(src.get_desc(), eng);
  std::memcpy(m.get_data_handle(), src.get_data_handle(), src.get_desc().get_size());
  return m;
}

}  // namespace

BaselineResult onednn_time(const std::string& pass, const Shape& s, DType dtype, Layout layout, bool plain_nchw,
                           const TimingPolicy& pol, size_t rotate_bytes) {
  BaselineResult r;
  try {
    dt type;
    switch (dtype) {
      case DType::f32: type = dt::f32; break;
      case DType::bf16: type = dt::bf16; break;
      case DType::f16: type = dt::f16; break;
      default: r.error = "dtype not supported by oneDNN"; return r;
    }
    const bool train = pass == "train";
    const bool need_fwd = train || pass == "fwd";
    const bool need_data = train || pass == "bwd_input";
    const bool need_wei = train || pass == "bwd_weight";
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::stream strm(eng);
    const Conv c = make_conv(s);
    const tag user_tag = layout == Layout::nhwc ? tag::nhwc : tag::nchw;

    Prims p;
    if (plain_nchw) {
      p = make_prims(eng, c, type, tag::nchw, need_fwd, need_data, need_wei, train);
    } else {
      // oneDNN's own choice first; when that is a reference or GEMM
      // implementation (blocked k >= 15), NHWC (JIT) if it does better.
      std::string first_err;
      bool have = false;
      try {
        p = make_prims(eng, c, type, tag::any, need_fwd, need_data, need_wei, train);
        have = true;
      } catch (const std::exception& e) {
        first_err = e.what();
      }
      if (!have || any_ref(p)) {
        try {
          Prims q = make_prims(eng, c, type, tag::nhwc, need_fwd, need_data, need_wei, train);
          if (!have || !any_ref(q)) p = q;
          have = true;
        } catch (const std::exception&) {
        }
      }
      if (!have) throw std::runtime_error(first_err);
    }
    r.impl = p.impl;

    // Buffer sets: each set holds every tensor of the pass.
    std::mt19937 rng(1234);
    const memory::desc src_md = p.fwd.src_desc(), wei_md = p.fwd.weights_desc(), bias_md = p.fwd.bias_desc(),
                       dst_md = p.fwd.dst_desc();
    struct Set {
      std::unordered_map<int, memory> fwd, data, wei;
    };
    std::vector<Set> sets(1);
    sets.reserve(256);  // s0 below stays valid while the vector grows
    int nsets = 1;
    // Set 0 from random user data via reorders (tensors shared between the
    // directions of a pass when oneDNN wants the same format); the others
    // are copies.
    {
      Set& s0 = sets[0];
      std::vector<std::pair<std::string, memory>> made;  // "src"/"wei"/"ddst" -> memory
      auto filled = [&](const std::string& what, const memory::desc& md, const memory::dims& dims, tag utag) {
        for (auto& e : made)
          if (e.first == what && e.second.get_desc() == md) return e.second;
        memory m = make_filled(eng, strm, md, dims, utag, rng);
        made.emplace_back(what, m);
        return m;
      };
      if (need_fwd) {
        s0.fwd[DNNL_ARG_SRC] = filled("src", src_md, c.src_dims, user_tag);
        s0.fwd[DNNL_ARG_WEIGHTS] = filled("wei", wei_md, c.wei_dims, tag::goihw);
        s0.fwd[DNNL_ARG_BIAS] = filled("bias", bias_md, c.bias_dims, tag::x);
        s0.fwd[DNNL_ARG_DST] = memory(dst_md, eng);
      }
      if (need_data) {
        s0.data[DNNL_ARG_DIFF_DST] = filled("ddst", p.bwd_data.diff_dst_desc(), c.dst_dims, user_tag);
        s0.data[DNNL_ARG_WEIGHTS] = filled("wei", p.bwd_data.weights_desc(), c.wei_dims, tag::goihw);
        s0.data[DNNL_ARG_DIFF_SRC] = memory(p.bwd_data.diff_src_desc(), eng);
      }
      if (need_wei) {
        s0.wei[DNNL_ARG_SRC] = filled("src", p.bwd_wei.src_desc(), c.src_dims, user_tag);
        s0.wei[DNNL_ARG_DIFF_DST] = filled("ddst", p.bwd_wei.diff_dst_desc(), c.dst_dims, user_tag);
        s0.wei[DNNL_ARG_DIFF_WEIGHTS] = memory(p.bwd_wei.diff_weights_desc(), eng);
        if (train) s0.wei[DNNL_ARG_DIFF_BIAS] = memory(p.bwd_wei.diff_bias_desc(), eng);
      }
      size_t set_bytes = 0;
      for (auto& e : made) set_bytes += e.second.get_desc().get_size();
      for (auto* m : {&s0.fwd, &s0.data, &s0.wei})
        for (auto& kv : *m)
          if (kv.first == DNNL_ARG_DST || kv.first == DNNL_ARG_DIFF_SRC || kv.first == DNNL_ARG_DIFF_WEIGHTS ||
              kv.first == DNNL_ARG_DIFF_BIAS)
            set_bytes += kv.second.get_desc().get_size();
      nsets = int(std::clamp<size_t>((rotate_bytes + set_bytes - 1) / std::max<size_t>(set_bytes, 1), 1, 256));
      sets.resize(size_t(nsets));
      for (int i = 1; i < nsets; ++i) {
        Set& si = sets[size_t(i)];
        // Clone each distinct buffer once, keeping the sharing.
        std::vector<std::pair<void*, memory>> copies;
        auto cl = [&](const memory& m) {
          for (auto& e : copies)
            if (e.first == m.get_data_handle()) return e.second;
          memory n = clone(eng, m);
          copies.emplace_back(m.get_data_handle(), n);
          return n;
        };
        for (auto& kv : s0.fwd) si.fwd[kv.first] = cl(kv.second);
        for (auto& kv : s0.data) si.data[kv.first] = cl(kv.second);
        for (auto& kv : s0.wei) si.wei[kv.first] = cl(kv.second);
      }
    }
    std::unique_ptr<dnnl::convolution_forward> fwd;
    std::unique_ptr<dnnl::convolution_backward_data> bwd_d;
    std::unique_ptr<dnnl::convolution_backward_weights> bwd_w;
    if (need_fwd) fwd = std::make_unique<dnnl::convolution_forward>(p.fwd);
    if (need_data) bwd_d = std::make_unique<dnnl::convolution_backward_data>(p.bwd_data);
    if (need_wei) bwd_w = std::make_unique<dnnl::convolution_backward_weights>(p.bwd_wei);

    const Timing t = time_calls(pol, [&](int call) {
      Set& st = sets[size_t(call % nsets)];
      if (fwd) fwd->execute(strm, st.fwd);
      if (bwd_d) bwd_d->execute(strm, st.data);
      if (bwd_w) bwd_w->execute(strm, st.wei);
      strm.wait();
    });
    r.ok = true;
    r.ms = t.ms;
    r.calls = t.calls;
  } catch (const std::exception& e) {
    r.ok = false;
    r.error = e.what();
  }
  return r;
}

}  // namespace dwconv::cli

#else  // !DWCONV_WITH_ONEDNN

namespace dwconv::cli {

bool onednn_available() { return false; }

BaselineResult onednn_time(const std::string&, const Shape&, DType, Layout, bool, const TimingPolicy&, size_t) {
  BaselineResult r;
  r.error = "this build has no oneDNN (configure with -DDWCONV_ONEDNN=ON and libdnnl-dev)";
  return r;
}

}  // namespace dwconv::cli

#endif
