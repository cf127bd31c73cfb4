#include "exposition.hpp"

#include <charconv>
#include <cmath>

namespace wsedge::ops {

namespace {

bool name_char(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

bool valid_name(std::string_view n, bool colon) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    if (!name_char(n[i], i == 0, colon)) return false;
  }
  return true;
}

void append_labels(std::string& out, std::span<const Label> labels, const Label* extra) {
  if (labels.empty() && !extra) return;
  out += '{';
  bool first = true;
  auto one = [&](const Label& l) {
    // A bad label name is a table's bug; a scraper would drop the whole scrape for it.
    if (!valid_label_name(l.name))
      throw std::invalid_argument(std::string("bad label name: ").append(l.name));
    if (!first) out += ',';
    first = false;
    out.append(l.name).append("=\"");
    append_label_value(out, l.value);
    out += '"';
  };
  for (const Label& l : labels) one(l);
  if (extra) one(*extra);
  out += '}';
}

void append_sample(std::string& out, std::string_view name, std::string_view suffix,
                   std::span<const Label> labels, const Label* extra, std::string_view value) {
  out.append(name).append(suffix);
  append_labels(out, labels, extra);
  out.append(" ").append(value).append("\n");
}

std::string u64(std::uint64_t v) {
  return std::to_string(v);
}

}  // namespace

void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

void append_help(std::string& out, std::string_view v) {
  // A quote needs no escape in HELP; a newline would end the line and turn the rest into junk.
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

bool valid_metric_name(std::string_view name) {
  return valid_name(name, true);
}

bool valid_label_name(std::string_view name) {
  // Names starting with __ are reserved for Prometheus itself.
  return valid_name(name, false) && !name.starts_with("__");
}

void append_double(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

Exposition::Family& Exposition::family(std::string_view name, std::string_view help,
                                       FamilyType type) {
  // A scrape has a hundred or so families: a linear search costs less than a map's allocations.
  for (Family& f : families_) {
    if (f.name == name) {
      if (f.type != type)
        throw std::invalid_argument(std::string("family added with two types: ").append(name));
      return f;
    }
  }
  if (!valid_metric_name(name))
    throw std::invalid_argument(std::string("bad metric name: ").append(name));
  // Prometheus' convention, which its parsers rely on to name the counter's family.
  if (type == FamilyType::kCounter && !name.ends_with("_total"))
    throw std::invalid_argument(std::string("counter not named *_total: ").append(name));
  // A histogram's samples take these suffixes: a family named so would collide with them.
  if (type != FamilyType::kCounter && (name.ends_with("_total") || name.ends_with("_bucket") ||
                                       name.ends_with("_count") || name.ends_with("_sum")))
    throw std::invalid_argument(
        std::string("gauge or histogram with a reserved suffix: ").append(name));
  return families_.emplace_back(Family{std::string(name), std::string(help), type, {}});
}

void Exposition::add(std::string_view name, std::string_view help, FamilyType type,
                     std::initializer_list<Label> labels, std::uint64_t value) {
  add(name, help, type, std::span<const Label>(labels.begin(), labels.size()), value);
}

void Exposition::add(std::string_view name, std::string_view help, FamilyType type,
                     std::span<const Label> labels, std::uint64_t value) {
  if (type == FamilyType::kHistogram)
    throw std::invalid_argument(std::string("histogram sample without buckets: ").append(name));
  Family& f = family(name, help, type);
  append_sample(f.samples, f.name, {}, labels, nullptr, u64(value));
}

void Exposition::add_histogram(std::string_view name, std::string_view help,
                               std::span<const Label> labels, const HistogramSample& h) {
  if (h.buckets.size() != h.bounds.size() + 1)
    throw std::invalid_argument(std::string("histogram buckets != bounds + 1: ").append(name));
  Family& f = family(name, help, FamilyType::kHistogram);
  // The format's buckets are cumulative (le = "less or equal"), ending with +Inf = _count.
  std::uint64_t below = 0;
  std::string le;
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    below += h.buckets[i];
    le.clear();
    append_double(le, i < h.bounds.size() ? h.bounds[i] : INFINITY);
    Label l{"le", le};
    append_sample(f.samples, f.name, "_bucket", labels, &l, u64(below));
  }
  std::string sum;
  append_double(sum, h.sum);
  append_sample(f.samples, f.name, "_sum", labels, nullptr, sum);
  append_sample(f.samples, f.name, "_count", labels, nullptr, u64(below));
}

std::string Exposition::text() const {
  static constexpr const char* kTypes[] = {"counter", "gauge", "histogram"};
  std::string out;
  for (const Family& f : families_) {
    out.append("# HELP ").append(f.name).append(" ");
    append_help(out, f.help);
    out.append("\n# TYPE ").append(f.name).append(" ");
    out.append(kTypes[static_cast<int>(f.type)]).append("\n");
    out += f.samples;
  }
  return out;
}

}  // namespace wsedge::ops
