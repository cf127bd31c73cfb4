#pragma once
// The Prometheus text exposition format 0.0.4, written from samples added in any order.
// Pure code: no sockets, no clock, no counters of its own; the metrics registry feeds it.
//
// Samples are grouped by family as they are added, so a family whose samples come from several
// cores (or several tables) prints once, under one # HELP and one # TYPE: a scraper refuses a
// family that appears twice ("second TYPE line for metric"), and the per-core walk adds core 0's
// families before core 1's.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace wsedge::ops {

enum class FamilyType : std::uint8_t { kCounter, kGauge, kHistogram };

struct Label {
  std::string_view name;
  std::string_view value;  // escaped when written: any bytes are fine
};

// The histogram's fixed upper bounds (seconds), ascending; +Inf is implied.
struct HistogramSample {
  std::span<const double> bounds;
  std::span<const std::uint64_t> buckets;  // per bound, NOT cumulative; plus one for +Inf
  double sum = 0;
};

class Exposition {
 public:
  // Adds one sample to `family` (created with `help` and `type` at its first sample). Throws
  // std::invalid_argument for a name the format refuses, a counter not named *_total, or a
  // family added again with another type: each is a bug in a metrics table, caught by the
  // exposition's own test over every table rather than by a scraper in production.
  void add(std::string_view family, std::string_view help, FamilyType type,
           std::initializer_list<Label> labels, std::uint64_t value);
  void add(std::string_view family, std::string_view help, FamilyType type,
           std::span<const Label> labels, std::uint64_t value);
  void add_histogram(std::string_view family, std::string_view help, std::span<const Label> labels,
                     const HistogramSample& h);

  // The whole text, families in the order they were first added.
  std::string text() const;
  std::size_t families() const { return families_.size(); }

 private:
  struct Family {
    std::string name;
    std::string help;
    FamilyType type;
    std::string samples;  // rendered sample lines
  };
  Family& family(std::string_view name, std::string_view help, FamilyType type);
  std::vector<Family> families_;
};

// Exposed for tests: the escaping rules of the format.
void append_label_value(std::string& out, std::string_view v);  // \\, \", \n
void append_help(std::string& out, std::string_view v);         // \\, \n
bool valid_metric_name(std::string_view name);                  // [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_label_name(std::string_view name);                   // [a-zA-Z_][a-zA-Z0-9_]*, no __
void append_double(std::string& out, double v);                 // shortest round trip, +Inf

}  // namespace wsedge::ops
