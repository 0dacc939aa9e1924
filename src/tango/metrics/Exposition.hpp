#pragma once
// Writes the Prometheus text exposition format (version 0.0.4): one HELP and
// TYPE line per family, then its samples; label values and help text escaped
// as the format requires; histograms as cumulative _bucket{le} + _sum + _count.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tango/metrics/Histogram.hpp"

namespace tango::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Exposition {
 public:
  // Starts a family; `type` is counter, gauge or histogram.
  void family(std::string_view name, std::string_view help, std::string_view type);
  void sample(std::string_view name, const Labels& labels, double value);
  void histogram(std::string_view name, const Labels& labels, const HistogramSnapshot& h);
  const std::string& text() const { return out_; }

  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Escaping rules of the format: label values escape \, " and newline; HELP escapes \ and newline.
  static std::string escapeLabel(std::string_view v);
  static std::string escapeHelp(std::string_view v);
  // Go-style float text: integers without a fraction, +Inf/-Inf/NaN spelled out.
  static std::string formatValue(double v);

 private:
  std::string out_;
};

}  // namespace tango::metrics
