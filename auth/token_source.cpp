#include "token_source.hpp"

namespace wsedge::auth {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls fn(item) for each `sep`-separated item of `list` as it is; stops when fn returns true.
template <class Fn>
bool each_item(std::string_view list, char sep, Fn&& fn) {
  while (true) {
    std::size_t end = list.find(sep);
    if (fn(list.substr(0, end))) return true;
    if (end == std::string_view::npos) return false;
    list.remove_prefix(end + 1);
  }
}

bool bearer(std::string_view value, std::string_view& token) {
  value = trim(value);
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() ||
      (value[kScheme.size()] != ' ' && value[kScheme.size()] != '\t'))
    return false;
  for (std::size_t i = 0; i < kScheme.size(); ++i)
    if ((value[i] | 0x20) != kScheme[i]) return false;
  token = trim(value.substr(kScheme.size()));
  return !token.empty();
}

// The query of a request-target: what follows '?' up to a '#'; empty when there is none.
std::string_view query_of(std::string_view target) {
  std::size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  return query.substr(0, query.find('#'));
}

bool is_token_param(std::string_view param) {
  return param.substr(0, param.find('=')) == "token";
}

}  // namespace

FoundToken find_token(const protocol::UpgradeRequest& req, const TokenSources& s) {
  std::string_view token;
  auto found = [&](TokenFrom from) { return FoundToken{token, from}; };
  if (s.header) {
    bool hit = false;
    req.for_each_header("authorization",
                        [&](std::string_view v) { hit = hit || bearer(v, token); });
    if (hit) return found(TokenFrom::kHeader);
  }
  if (s.protocol) {
    bool hit = false;
    req.for_each_header("sec-websocket-protocol", [&](std::string_view list) {
      hit = hit || each_item(list, ',', [&](std::string_view entry) {
              entry = trim(entry);
              if (entry.size() <= 7 || entry.substr(0, 7) != "bearer.") return false;
              token = entry.substr(7);
              return true;
            });
    });
    if (hit) return found(TokenFrom::kProtocol);
  }
  if (s.cookie && !s.cookie_name.empty()) {
    bool hit = false;
    req.for_each_header("cookie", [&](std::string_view list) {
      hit = hit || each_item(list, ';', [&](std::string_view pair) {
              pair = trim(pair);
              std::size_t eq = pair.find('=');
              if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != s.cookie_name)
                return false;
              std::string_view value = trim(pair.substr(eq + 1));
              // RFC 6265 §4.1.1 lets a cookie value be wrapped in double quotes.
              if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
                value = value.substr(1, value.size() - 2);
              token = value;
              return !token.empty();
            });
    });
    if (hit) return found(TokenFrom::kCookie);
  }
  if (s.query) {
    bool hit = each_item(query_of(req.target), '&', [&](std::string_view param) {
      if (!is_token_param(param) || param.size() <= 6 || param[5] != '=') return false;
      token = param.substr(6);
      return token.find('%') == std::string_view::npos;
    });
    if (hit) return found(TokenFrom::kQuery);
  }
  return {};
}

std::string_view strip_token_param(std::string_view target, std::string& out) {
  std::string_view query = query_of(target);
  if (query.empty()) return target;
  bool any = false;
  each_item(query, '&', [&](std::string_view p) { return any = is_token_param(p); });
  if (!any) return target;
  std::size_t q = target.find('?');
  out.assign(target.substr(0, q));
  char sep = '?';
  each_item(query, '&', [&](std::string_view p) {
    if (!is_token_param(p) && !p.empty()) {
      out += sep;
      out.append(p);
      sep = '&';
    }
    return false;
  });
  out.append(target.substr(q + 1 + query.size()));  // a fragment, if the client sent one
  return out;
}

}  // namespace wsedge::auth
