#pragma once
// Sec-WebSocket-Extensions (RFC 6455 §9.1) over byte views, so that an extension such as
// permessage-deflate (RFC 7692) can read an offer and its parameters without allocating: every
// name and value is a view into the header value.
//
// Grammar: a comma-separated list of `token *( OWS ";" OWS param )`, param being
// `token [ BWS "=" BWS ( token | quoted-string ) ]`. Empty list elements are skipped (RFC 7230
// §7). A quoted value must, once unescaped, be a token (§9.1); as a token never needs escaping,
// a quoted value is accepted only without backslash escapes, so every value is a plain view
// (the text between the quotes). Anything else makes the whole list malformed.
#include <cstdint>
#include <string_view>

namespace wsedge::protocol {

// RFC 7230 §3.2.6 tchar: what header names and extension tokens are made of.
bool is_tchar(char c);

struct ExtensionParam {
  std::string_view name;
  std::string_view value;  // unquoted; empty when !has_value
  bool has_value;
};

struct Extension {
  std::string_view name;
  std::string_view params;  // the validated text after the name: read it with for_each_param
};

enum class ExtParse : std::uint8_t { kOk, kEnd, kMalformed };

// Splits the next extension off `list`, advancing `list` past it and its comma.
ExtParse next_extension(std::string_view& list, Extension& out);
// Splits the next parameter off `params` (an Extension::params), advancing past it.
ExtParse next_param(std::string_view& params, ExtensionParam& out);
// True when `list` is a well-formed Sec-WebSocket-Extensions value (an empty one included).
bool valid_extensions(std::string_view list);

// Calls fn(const Extension&) for each extension of `list`, in order; returns false, without
// calling fn at all, when `list` is malformed, so no caller acts on half an offer.
template <class Fn>
bool for_each_extension(std::string_view list, Fn&& fn) {
  if (!valid_extensions(list)) return false;
  Extension e;
  while (next_extension(list, e) == ExtParse::kOk) fn(e);
  return true;
}

// Calls fn(const ExtensionParam&) for each parameter of `e`, in order.
template <class Fn>
void for_each_param(const Extension& e, Fn&& fn) {
  std::string_view rest = e.params;
  ExtensionParam p;
  while (next_param(rest, p) == ExtParse::kOk) fn(p);
}

}  // namespace wsedge::protocol
