#pragma once
// A small strict RFC 8259 reader over a string_view, for token headers, claims and JWK Sets.
// parse() validates the whole document once (grammar, UTF-8 in strings, depth, no duplicate
// member names); a Value is then a typed view of its exact text, and lookups re-walk that text.
// Nothing is copied until a string or integer is extracted. It never reads outside the view it
// was given, whatever the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wsedge::auth::json {

// Deeper documents are refused: the parser recurses, and no token or key needs more.
inline constexpr int kMaxDepth = 32;

enum class Type : std::uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };

struct Value {
  Type type = Type::kNull;
  std::string_view raw;  // the value's exact text (a string's includes its quotes)

  // The member `name` of an object (compared with the member names unescaped). False when this
  // is not an object or has no such member. Each call walks the object: a reader of several
  // members takes them in one for_each_member pass instead.
  bool find(std::string_view name, Value& out) const;
  // Calls fn(std::string_view name, const Value&) for every member of an object, in order, with
  // its name unescaped. False when not an object.
  template <class Fn>
  bool for_each_member(Fn&& fn) const {
    if (type != Type::kObject) return false;
    std::size_t pos = 1;
    std::string scratch;  // only a name with escapes is copied into it
    std::string_view name;
    Value v;
    while (next_member(pos, scratch, name, v)) fn(name, v);
    return true;
  }
  // Calls fn(const Value&) for every element of an array, in order. False when not an array.
  template <class Fn>
  bool for_each_element(Fn&& fn) const {
    if (type != Type::kArray) return false;
    std::size_t pos = 1;
    Value v;
    while (next_element(pos, v)) fn(v);
    return true;
  }
  // The number of elements of an array (0 for anything else).
  std::size_t size() const;
  // A string's value, unescaped (\uXXXX and surrogate pairs to UTF-8). False when not a string.
  bool get_string(std::string& out) const;
  // A number as an integer: a fraction or exponent is accepted and the value floored (claims may
  // be written 1.7e9 or 1700000000.5). False when not a number or outside int64_t.
  bool get_int(std::int64_t& out) const;
  bool get_bool(bool& out) const;

  // Iteration step for for_each_element: the element at `pos` (an offset in raw, just past '['
  // or a ','), advancing pos. False at the end.
  bool next_element(std::size_t& pos, Value& out) const;
  // Iteration step for for_each_member, as next_element: the member at `pos` (just past '{' or
  // a value), its name a view of raw or, when escaped, of `scratch`.
  bool next_member(std::size_t& pos, std::string& scratch, std::string_view& name,
                   Value& out) const;
};

// Parses `text` as exactly one JSON value with optional whitespace around it. False on any
// violation of RFC 8259, on invalid UTF-8, on nesting deeper than kMaxDepth and on an object with
// two members of the same name (RFC 7515 §5.2 lets a JWS reader refuse those, and refusing them
// closes the gap where two parsers would pick different members).
bool parse(std::string_view text, Value& out);

}  // namespace wsedge::auth::json
