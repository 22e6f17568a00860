#pragma once
// Verification metrics of a genuine/impostor similarity score set (identity separability, the paper's Figure 1):
// EER, FMR100, FMR1000 (FNMR at an FMR operating point), score means and standard deviations, and the Fisher
// discriminant ratio FDR. Two conventions for the threshold sweep (see README, "Evaluating identity separability"):
//   kPyeer   reproduces pyeer 0.5.6 (geteerinf: calculate_roc, get_eer_values, get_fmr_op) on the same scores
//   kStrict  FMR/FNMR interpolated linearly between operating points for the EER; the lowest FNMR at FMR <= op
// Pure functions of the score multisets: the order of the scores does not change the result.
#include <cstdint>
#include <string>
#include <vector>

namespace adaptdiff::eval {

/// Convention of the threshold sweep.
enum class Convention { kPyeer, kStrict };

/// "pyeer" | "strict" -> Convention. Throws InputError naming the value otherwise.
Convention parse_convention(const std::string& name);
const char* convention_name(Convention convention);

/// The operating points of a threshold sweep over similarity scores (accept a pair when score >= t), one per
/// distinct score value t in ascending order, and for kStrict one more at t = +inf (FMR 0, FNMR 1).
/// fm[k] = #{impostor >= t_k}, fnm[k] = #{genuine < t_k} (counts, exact); fmr = fm / n_impostor and
/// fnmr = fnm / n_genuine as IEEE doubles.
struct Roc {
  std::vector<double> threshold;  ///< t_k ascending (+inf last for kStrict)
  std::vector<double> fmr;        ///< false match rate at t_k, non-increasing
  std::vector<double> fnmr;       ///< false non-match rate at t_k, non-decreasing
};

/// The sweep over `genuine` and `impostor` (both non-empty, finite). with_infinity adds the t = +inf point.
/// Throws InputError for an empty or non-finite score set.
Roc sweep(std::vector<double> genuine, std::vector<double> impostor, bool with_infinity);

/// EER of `roc`.
///   kPyeer: pyeer's get_eer_values: t2 = first k with fmr - fnmr <= 0, t1 = t2 - 1 unless the difference at
///           t2 is 0 or t2 = 0; EER = (fmr + fnmr) / 2 at whichever of t1, t2 has the smaller fmr + fnmr (t1 on a
///           tie). No such k (curves never meet): 1, as pyeer returns (warned by the caller).
///   kStrict: the crossing of FMR = FNMR on the polyline through the operating points (roc must include +inf):
///           first k with fmr - fnmr <= 0; exact point when the difference is 0, else linear interpolation of
///           fmr between k - 1 and k at the zero of fmr - fnmr.
double eer(const Roc& roc, Convention convention);

/// FNMR at the operating point FMR = op (op = 0.01 for FMR100, 0.001 for FMR1000).
///   kPyeer: pyeer's get_fmr_op: fnmr at the first k minimising |fmr - op| (its FMR may exceed op).
///   kStrict: the lowest fnmr over the points with fmr <= op (the +inf point guarantees one).
double fnmr_at_fmr(const Roc& roc, double op, Convention convention);

/// Everything metrics.json holds.
struct Metrics {
  double eer = 0.0;
  double fmr100 = 0.0;         ///< FNMR at FMR 1% (operating point per convention)
  double fmr1000 = 0.0;        ///< FNMR at FMR 0.1%
  double genuine_mean = 0.0;
  double genuine_std = 0.0;    ///< population standard deviation (ddof = 0, as numpy.std)
  double impostor_mean = 0.0;
  double impostor_std = 0.0;
  double fdr = 0.0;            ///< (mu_G - mu_I)^2 / (sigma_G^2 + sigma_I^2); NaN when both variances are 0 (metrics.json: null)
  int64_t n_genuine = 0;
  int64_t n_impostor = 0;
  bool curves_meet = true;     ///< kPyeer only: false when pyeer would warn and return EER 1
};

/// Mean and population standard deviation of `x` (non-empty): compensated sums over the sorted values, so
/// the result does not depend on the order of x.
void mean_std(std::vector<double> x, double& mean, double& std_dev);

/// All metrics of the score sets under `convention`. Throws InputError for an empty or non-finite set.
Metrics compute_metrics(const std::vector<double>& genuine, const std::vector<double>& impostor,
                        Convention convention);

}  // namespace adaptdiff::eval
