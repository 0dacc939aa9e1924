#include "tango/metrics/Exposition.hpp"

#include <cmath>
#include <cstdio>

namespace tango::metrics {

std::string Exposition::escapeLabel(std::string_view v) {
  std::string s;
  s.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      s += "\\\\";
    else if (c == '"')
      s += "\\\"";
    else if (c == '\n')
      s += "\\n";
    else
      s += c;
  }
  return s;
}

std::string Exposition::escapeHelp(std::string_view v) {
  std::string s;
  for (char c : v) {
    if (c == '\\')
      s += "\\\\";
    else if (c == '\n')
      s += "\\n";
    else
      s += c;
  }
  return s;
}

std::string Exposition::formatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
  }
  return buf;
}

void Exposition::family(std::string_view name, std::string_view help, std::string_view type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escapeHelp(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void Exposition::sample(std::string_view name, const Labels& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out_ += ',';
      first = false;
      out_ += k;
      out_ += "=\"";
      out_ += escapeLabel(v);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += formatValue(value);
  out_ += '\n';
}

void Exposition::histogram(std::string_view name, const Labels& labels,
                           const HistogramSnapshot& h) {
  const std::string base(name);
  for (std::size_t i = 0; i <= h.bounds.size(); ++i) {
    Labels l = labels;
    l.emplace_back("le", i < h.bounds.size() ? formatValue(h.bounds[i]) : "+Inf");
    sample(base + "_bucket", l, static_cast<double>(h.cumulative[i]));
  }
  sample(base + "_sum", labels, h.sum);
  sample(base + "_count", labels, static_cast<double>(h.count));
}

}  // namespace tango::metrics
