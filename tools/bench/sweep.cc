#include "tools/bench/sweep.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace moe::bench {
namespace {

// A round tick step (1, 2 or 5 times a power of ten) giving about `ticks` ticks to `max`.
double NiceStep(double max, int ticks) {
  if (!(max > 0.0)) return 1.0;
  double raw = max / ticks;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / mag;
  double nice = f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0;
  return nice * mag;
}

std::string Num(double v) { return absl::StrFormat("%.1f", v); }

struct Series {
  std::string name;
  std::string color;
  bool dashed;
  std::vector<double> y;
};

// One panel at (x0, y0) of size w x h: axes, grid, ticks, one polyline per series.
std::string Panel(double x0, double y0, double w, double h, const std::string& title,
                  const std::vector<double>& xs, const std::vector<std::string>& labels,
                  const std::vector<Series>& series) {
  double xmax = 0.0, ymax = 0.0;
  for (double x : xs) xmax = std::max(xmax, x);
  for (const Series& s : series) {
    for (double y : s.y) ymax = std::max(ymax, y);
  }
  double xstep = NiceStep(xmax, 5), ystep = NiceStep(ymax, 5);
  xmax = std::max(xstep, std::ceil(xmax * 1.05 / xstep) * xstep);
  ymax = std::max(ystep, std::ceil(ymax * 1.05 / ystep) * ystep);
  auto px = [&](double x) { return x0 + x / xmax * w; };
  auto py = [&](double y) { return y0 + h - y / ymax * h; };

  std::string out;
  absl::StrAppendFormat(&out,
                        "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\" font-size=\"15\" "
                        "font-weight=\"bold\">%s</text>\n",
                        Num(x0 + w / 2), Num(y0 - 12), title);
  for (double t = 0.0; t <= xmax + xstep / 2; t += xstep) {
    absl::StrAppendFormat(&out,
                          "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#e5e5e5\"/>\n"
                          "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\" font-size=\"11\">%g</text>\n",
                          Num(px(t)), Num(y0), Num(px(t)), Num(y0 + h), Num(px(t)),
                          Num(y0 + h + 16), t);
  }
  for (double t = 0.0; t <= ymax + ystep / 2; t += ystep) {
    absl::StrAppendFormat(&out,
                          "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#e5e5e5\"/>\n"
                          "<text x=\"%s\" y=\"%s\" text-anchor=\"end\" font-size=\"11\">%g</text>\n",
                          Num(x0), Num(py(t)), Num(x0 + w), Num(py(t)), Num(x0 - 6),
                          Num(py(t) + 4), t);
  }
  absl::StrAppendFormat(&out,
                        "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"none\" "
                        "stroke=\"#333\"/>\n",
                        Num(x0), Num(y0), Num(w), Num(h));
  absl::StrAppendFormat(&out,
                        "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\" font-size=\"12\">"
                        "output token throughput (tok/s)</text>\n",
                        Num(x0 + w / 2), Num(y0 + h + 36));
  absl::StrAppendFormat(&out,
                        "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\" font-size=\"12\" "
                        "transform=\"rotate(-90 %s %s)\">latency (ms)</text>\n",
                        Num(x0 - 52), Num(y0 + h / 2), Num(x0 - 52), Num(y0 + h / 2));
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    std::string pts;
    for (size_t i = 0; i < xs.size(); ++i) absl::StrAppend(&pts, Num(px(xs[i])), ",", Num(py(s.y[i])), " ");
    absl::StrAppendFormat(&out,
                          "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                          pts, s.color, s.dashed ? " stroke-dasharray=\"6,4\"" : "");
    for (size_t i = 0; i < xs.size(); ++i) {
      absl::StrAppendFormat(&out, "<circle cx=\"%s\" cy=\"%s\" r=\"3.5\" fill=\"%s\"/>\n",
                            Num(px(xs[i])), Num(py(s.y[i])), s.color);
      if (k == 0) {
        absl::StrAppendFormat(&out,
                              "<text x=\"%s\" y=\"%s\" font-size=\"10\" fill=\"#555\">%s</text>\n",
                              Num(px(xs[i]) + 5), Num(py(s.y[i]) + 14), labels[i]);
      }
    }
    // Legend, top left inside the panel.
    double ly = y0 + 16 + 16 * k;
    absl::StrAppendFormat(&out,
                          "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" "
                          "stroke-width=\"2\"%s/>\n<text x=\"%s\" y=\"%s\" font-size=\"11\">%s</text>\n",
                          Num(x0 + 10), Num(ly), Num(x0 + 34), Num(ly), s.color,
                          s.dashed ? " stroke-dasharray=\"6,4\"" : "", Num(x0 + 40), Num(ly + 4),
                          s.name);
  }
  return out;
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::UnavailableError(absl::StrCat(path, ": cannot open for writing"));
  out << text;
  if (!out) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<double>> ParseSweepRates(const std::string& text) {
  std::vector<double> rates;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    double r;
    if (part == "inf") {
      r = std::numeric_limits<double>::infinity();
    } else if (!absl::SimpleAtod(part, &r) || !(r > 0.0) || std::isinf(r)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sweep: '", part, "' is not a rate > 0 or 'inf'"));
    }
    rates.push_back(r);
  }
  if (rates.empty()) return absl::InvalidArgumentError("sweep: no rates given");
  return rates;
}

std::string RateLabel(double rate) {
  if (std::isinf(rate)) return "inf";
  return absl::StrFormat("%g", rate);
}

std::string SweepTable(absl::Span<const SweepPoint> points) {
  std::string out =
      "| rate (req/s) | ok | failed | req/s | output tok/s | peak tok/s | total tok/s | "
      "median TTFT (ms) | P99 TTFT (ms) | median TPOT (ms) | P99 TPOT (ms) | "
      "median ITL (ms) | P99 ITL (ms) | median E2EL (ms) | P99 E2EL (ms) |\n"
      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const SweepPoint& p : points) {
    const Summary& s = p.summary;
    absl::StrAppendFormat(
        &out, "| %s | %d | %d | %.2f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
        RateLabel(p.request_rate), s.completed, s.failed, s.request_throughput,
        s.output_throughput, s.peak_output_throughput, s.total_token_throughput,
        s.ttft.median_ms, s.ttft.p99_ms, s.tpot.median_ms, s.tpot.p99_ms, s.itl.median_ms,
        s.itl.p99_ms, s.e2el.median_ms, s.e2el.p99_ms);
  }
  return out;
}

std::string SweepSvg(absl::Span<const SweepPoint> points) {
  std::vector<double> xs;
  std::vector<std::string> labels;
  Series e2e_med{"median E2E latency", "#1f77b4", false, {}};
  Series e2e_p99{"P99 E2E latency", "#d62728", true, {}};
  Series ttft_med{"median TTFT", "#1f77b4", false, {}};
  Series ttft_p99{"P99 TTFT", "#d62728", true, {}};
  for (const SweepPoint& p : points) {
    xs.push_back(p.summary.output_throughput);
    labels.push_back(absl::StrCat(RateLabel(p.request_rate), " req/s"));
    e2e_med.y.push_back(p.summary.e2el.median_ms);
    e2e_p99.y.push_back(p.summary.e2el.p99_ms);
    ttft_med.y.push_back(p.summary.ttft.median_ms);
    ttft_p99.y.push_back(p.summary.ttft.p99_ms);
  }
  const double width = 1000, height = 440;
  std::string out = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      static_cast<int>(width), static_cast<int>(height), static_cast<int>(width),
      static_cast<int>(height));
  out += Panel(80, 50, 380, 320, "End-to-end latency vs throughput", xs, labels, {e2e_med, e2e_p99});
  out += Panel(580, 50, 380, 320, "Time to first token vs throughput", xs, labels,
               {ttft_med, ttft_p99});
  out += "</svg>\n";
  return out;
}

absl::Status WriteSweep(const std::string& dir, absl::Span<const SweepPoint> points) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  absl::Status s = WriteFile(dir + "/sweep.md", SweepTable(points));
  if (!s.ok()) return s;
  return WriteFile(dir + "/sweep.svg", SweepSvg(points));
}

}  // namespace moe::bench
