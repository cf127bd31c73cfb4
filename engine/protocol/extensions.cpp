#include "extensions.hpp"

#include <cstring>

namespace wsedge::protocol {
namespace {

void skip_ows(std::string_view& s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
}

std::string_view take_token(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && is_tchar(s[n])) ++n;
  std::string_view t = s.substr(0, n);
  s.remove_prefix(n);
  return t;
}

}  // namespace

bool is_tchar(char c) {
  // c != '\0' first: strchr would match the terminator of its own string.
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

ExtParse next_param(std::string_view& s, ExtensionParam& out) {
  skip_ows(s);
  if (s.empty() || s.front() == ',') return ExtParse::kEnd;
  if (s.front() != ';') return ExtParse::kMalformed;
  s.remove_prefix(1);
  skip_ows(s);
  out = {take_token(s), {}, false};
  if (out.name.empty()) return ExtParse::kMalformed;
  skip_ows(s);
  if (s.empty() || s.front() != '=') return ExtParse::kOk;
  s.remove_prefix(1);
  skip_ows(s);
  out.has_value = true;
  bool quoted = !s.empty() && s.front() == '"';
  if (quoted) s.remove_prefix(1);
  out.value = take_token(s);
  if (out.value.empty()) return ExtParse::kMalformed;
  if (quoted) {
    // Also refuses a backslash escape: take_token stopped at it, not at the closing quote.
    if (s.empty() || s.front() != '"') return ExtParse::kMalformed;
    s.remove_prefix(1);
  }
  return ExtParse::kOk;
}

ExtParse next_extension(std::string_view& s, Extension& out) {
  for (skip_ows(s); !s.empty() && s.front() == ','; skip_ows(s)) s.remove_prefix(1);
  if (s.empty()) return ExtParse::kEnd;
  out.name = take_token(s);
  if (out.name.empty()) return ExtParse::kMalformed;
  std::string_view params = s;
  ExtensionParam p;
  ExtParse st;
  while ((st = next_param(s, p)) == ExtParse::kOk) {
  }
  if (st == ExtParse::kMalformed) return st;
  out.params = params.substr(0, params.size() - s.size());
  if (!s.empty()) s.remove_prefix(1);  // the comma
  return ExtParse::kOk;
}

bool valid_extensions(std::string_view list) {
  Extension e;
  ExtParse st;
  while ((st = next_extension(list, e)) == ExtParse::kOk) {
  }
  return st == ExtParse::kEnd;
}

}  // namespace wsedge::protocol
