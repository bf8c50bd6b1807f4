// recurrent_backward.cpp: see recurrent_backward.h.
#include "testing/recurrent_backward.h"

#include <cmath>

namespace tnl::testing {

Outputs recurrent_backward(const AttnCase& c) {
  const AttnCaseConfig& cfg = c.config();
  const int64_t D = cfg.dim_qk, E = cfg.dim_v;
  const double scale = cfg.scale;
  Outputs out{{"dq", {}}, {"dk", {}}, {"dv", {}}};
  std::vector<double> ds0_all;
  for (int64_t s = 0; s < c.num_seqs(); ++s)
    for (int64_t h = 0; h < cfg.heads; ++h) {
      const int64_t L = c.seq_len(s);
      const double lambda = std::exp(-(double)c.slopes()[h]);
      const std::vector<double> q = c.head_rows(c.q64, s, h), k = c.head_rows(c.k64, s, h);
      const std::vector<double> v = c.head_rows(c.v64, s, h), g = c.head_rows(c.d_o64, s, h);
      std::vector<double> st(D * E, 0.0), dsf(D * E, 0.0);  // (D, E)
      if (cfg.initial_state) st = c.state_block(c.initial_state64, s, h);
      if (cfg.d_final_state) dsf = c.state_block(c.d_final_state64, s, h);
      std::vector<double> dq(L * D, 0.0), dk(L * D, 0.0), dv(L * E, 0.0);
      for (int64_t t = 0; t < L; ++t)  // forward scan: S_t, dq_t
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t e = 0; e < E; ++e) {
            double& x = st[d * E + e];
            x = lambda * x + k[t * D + d] * v[t * E + e];
            acc += g[t * E + e] * x;
          }
          dq[t * D + d] = scale * acc;
        }
      std::vector<double> r = dsf;  // Ŝ, reverse scan
      for (int64_t t = L - 1; t >= 0; --t) {
        for (int64_t d = 0; d < D; ++d)
          for (int64_t e = 0; e < E; ++e) {
            double& x = r[d * E + e];
            x = (t == L - 1 ? x : lambda * x) + scale * q[t * D + d] * g[t * E + e];
          }
        for (int64_t d = 0; d < D; ++d)
          for (int64_t e = 0; e < E; ++e) {
            dk[t * D + d] += r[d * E + e] * v[t * E + e];
            dv[t * E + e] += k[t * D + d] * r[d * E + e];
          }
      }
      if (L > 0)
        for (double& x : r) x *= lambda;
      out["dq"].insert(out["dq"].end(), dq.begin(), dq.end());
      out["dk"].insert(out["dk"].end(), dk.begin(), dk.end());
      out["dv"].insert(out["dv"].end(), dv.begin(), dv.end());
      ds0_all.insert(ds0_all.end(), r.begin(), r.end());
    }
  if (cfg.d_initial_state) out["d_initial_state"] = ds0_all;
  return out;
}

}  // namespace tnl::testing
