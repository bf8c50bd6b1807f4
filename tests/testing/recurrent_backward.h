// recurrent_backward.h: an O(N·D·E) fp64 oracle for the backward, for sequences too long for
// the quadratic reference::attention_backward. The recurrences of spec §1, token by token:
//   S_t = λ S_{t-1} + k_tᵀ v_t (S_{-1} = S0);      dq_t = c dO_t S_tᵀ
//   Ŝ_t = c q_tᵀ dO_t + λ Ŝ_{t+1} (Ŝ_{N-1} adds dS_final);  dk_t = Ŝ_t v_t;  dv_t = k_t Ŝ_t
//   dS0 = λ Ŝ_0 (dS_final for an empty sequence)
// Reads the case's fp64 input copies; tested against the quadratic oracle in
// tests/testing/test_attn_case.cpp.
#pragma once

#include "testing/attn_case.h"

namespace tnl::testing {

// dq, dk, dv (+ d_initial_state), in the canonical order of AttnCase.
Outputs recurrent_backward(const AttnCase& c);

}  // namespace tnl::testing
