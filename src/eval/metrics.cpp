#include "eval/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.hpp"

namespace adaptdiff::eval {

namespace {

void check_scores(const std::vector<double>& x, const char* which) {
  if (x.empty()) throw InputError(std::string("eval::metrics: no ") + which + " scores");
  for (size_t k = 0; k < x.size(); ++k) {
    if (!std::isfinite(x[k])) {
      throw InputError(std::string("eval::metrics: ") + which + " score " + std::to_string(k) + " is not finite");
    }
  }
}

// Neumaier's compensated sum: accurate to about one rounding of the result.
struct CompensatedSum {
  double sum = 0.0;
  double carry = 0.0;
  void add(double v) {
    const double t = sum + v;
    carry += std::fabs(sum) >= std::fabs(v) ? (sum - t) + v : (v - t) + sum;
    sum = t;
  }
  double value() const { return sum + carry; }
};

}  // namespace

Convention parse_convention(const std::string& name) {
  if (name == "pyeer") return Convention::kPyeer;
  if (name == "strict") return Convention::kStrict;
  throw InputError("eval: --convention '" + name + "' is not one of: pyeer, strict");
}

const char* convention_name(Convention convention) {
  return convention == Convention::kPyeer ? "pyeer" : "strict";
}

Roc sweep(std::vector<double> genuine, std::vector<double> impostor, bool with_infinity) {
  check_scores(genuine, "genuine");
  check_scores(impostor, "impostor");
  std::sort(genuine.begin(), genuine.end());
  std::sort(impostor.begin(), impostor.end());
  const auto n_g = static_cast<double>(genuine.size());
  const auto n_i = static_cast<double>(impostor.size());
  Roc roc;
  size_t g = 0, i = 0;  // genuine[0, g) < t, impostor[0, i) < t
  while (g < genuine.size() || i < impostor.size()) {
    const double t = g == genuine.size()    ? impostor[i]
                     : i == impostor.size() ? genuine[g]
                                            : std::min(genuine[g], impostor[i]);
    roc.threshold.push_back(t);
    roc.fnmr.push_back(static_cast<double>(g) / n_g);
    roc.fmr.push_back(static_cast<double>(impostor.size() - i) / n_i);
    while (g < genuine.size() && genuine[g] == t) ++g;
    while (i < impostor.size() && impostor[i] == t) ++i;
  }
  if (with_infinity) {
    roc.threshold.push_back(std::numeric_limits<double>::infinity());
    roc.fmr.push_back(0.0);
    roc.fnmr.push_back(1.0);
  }
  return roc;
}

double eer(const Roc& roc, Convention convention) {
  const size_t n = roc.fmr.size();
  size_t k = 0;
  while (k < n && roc.fmr[k] - roc.fnmr[k] > 0) ++k;
  if (convention == Convention::kPyeer) {
    if (k == n) return 1.0;  // pyeer: "the FMR and FNMR curves do not intersect"
    const size_t t2 = k;
    const size_t t1 = (roc.fmr[t2] - roc.fnmr[t2] != 0 && t2 != 0) ? t2 - 1 : t2;
    const size_t pick = roc.fmr[t1] + roc.fnmr[t1] <= roc.fmr[t2] + roc.fnmr[t2] ? t1 : t2;
    return (roc.fnmr[pick] + roc.fmr[pick]) / 2;
  }
  if (k == n) throw Error("eval::eer: strict sweep without the +inf point");
  const double d1 = roc.fmr[k] - roc.fnmr[k];
  if (d1 == 0 || k == 0) return roc.fmr[k];
  const double d0 = roc.fmr[k - 1] - roc.fnmr[k - 1];  // > 0
  const double alpha = d0 / (d0 - d1);
  return roc.fmr[k - 1] + alpha * (roc.fmr[k] - roc.fmr[k - 1]);
}

double fnmr_at_fmr(const Roc& roc, double op, Convention convention) {
  if (convention == Convention::kPyeer) {
    size_t best = 0;
    for (size_t k = 1; k < roc.fmr.size(); ++k) {
      if (std::fabs(roc.fmr[k] - op) < std::fabs(roc.fmr[best] - op)) best = k;
    }
    return roc.fnmr[best];
  }
  double best = std::numeric_limits<double>::infinity();
  for (size_t k = 0; k < roc.fmr.size(); ++k) {
    if (roc.fmr[k] <= op) best = std::min(best, roc.fnmr[k]);
  }
  return best;
}

void mean_std(std::vector<double> x, double& mean, double& std_dev) {
  std::sort(x.begin(), x.end());
  CompensatedSum s;
  for (double v : x) s.add(v);
  mean = s.value() / static_cast<double>(x.size());
  CompensatedSum q;
  for (double v : x) q.add((v - mean) * (v - mean));
  std_dev = std::sqrt(q.value() / static_cast<double>(x.size()));
}

Metrics compute_metrics(const std::vector<double>& genuine, const std::vector<double>& impostor,
                        Convention convention) {
  const Roc roc = sweep(genuine, impostor, convention == Convention::kStrict);
  Metrics m;
  m.n_genuine = static_cast<int64_t>(genuine.size());
  m.n_impostor = static_cast<int64_t>(impostor.size());
  m.eer = eer(roc, convention);
  if (convention == Convention::kPyeer) {
    m.curves_meet = false;
    for (size_t k = 0; k < roc.fmr.size(); ++k) m.curves_meet = m.curves_meet || roc.fmr[k] - roc.fnmr[k] <= 0;
  }
  m.fmr100 = fnmr_at_fmr(roc, 0.01, convention);
  m.fmr1000 = fnmr_at_fmr(roc, 0.001, convention);
  mean_std(genuine, m.genuine_mean, m.genuine_std);
  mean_std(impostor, m.impostor_mean, m.impostor_std);
  const double diff = m.genuine_mean - m.impostor_mean;
  const double var = m.genuine_std * m.genuine_std + m.impostor_std * m.impostor_std;
  // Ref: Fisher discriminant ratio, FDR = (mu_G - mu_I)^2 / (sigma_G^2 + sigma_I^2).
  m.fdr = var > 0 ? diff * diff / var : (diff != 0 ? std::numeric_limits<double>::infinity()
                                                   : std::numeric_limits<double>::quiet_NaN());
  return m;
}

}  // namespace adaptdiff::eval
