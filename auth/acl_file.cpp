#include "acl_file.hpp"

#include <toml++/toml.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace wsedge::auth {
namespace {

class Parser {
 public:
  explicit Parser(std::string_view source) : source_(source) {}

  AclModel parse(std::string_view text) {
    toml::table doc;
    try {
      doc = toml::parse(text, source_);
    } catch (const toml::parse_error& e) {
      fail(e.source(), e.description());
    }
    AclModel m;
    for (auto&& [key, node] : doc) {
      if (key == "roles") {
        roles(node, m);
      } else if (key == "users") {
        users(node, m);
      } else if (key == "allow" || key == "deny") {
        rules(key.str(), node, m);
      } else {
        fail(key.source(), std::string("unknown top-level key '")
                               .append(key.str())
                               .append("' (expected roles, users, allow or deny)"));
      }
    }
    return m;
  }

 private:
  [[noreturn]] void fail(const toml::source_region& at, std::string_view what) const {
    throw AclError(std::string(source_)
                       .append(":")
                       .append(std::to_string(at.begin.line))
                       .append(":")
                       .append(std::to_string(at.begin.column))
                       .append(": ")
                       .append(what));
  }

  const toml::table& table(const toml::node& n, std::string_view what) const {
    if (!n.is_table()) fail(n.source(), std::string(what).append(": expected a table"));
    return *n.as_table();
  }

  void name(const toml::key& k, std::string_view what) const {
    if (k.str().empty()) fail(k.source(), std::string("empty ").append(what));
  }

  // An array of non-empty strings. `what` says where, in the messages.
  std::vector<std::string> names(const toml::node& n, std::string_view what,
                                 bool may_be_empty) const {
    const toml::array* a = n.as_array();
    if (a == nullptr) fail(n.source(), std::string(what).append(": expected an array of strings"));
    if (a->empty() && !may_be_empty) fail(n.source(), std::string(what).append(": empty list"));
    std::vector<std::string> out;
    for (const toml::node& e : *a) {
      const std::string* s = e.is_string() ? &e.as_string()->get() : nullptr;
      if (s == nullptr) fail(e.source(), std::string(what).append(": expected a string"));
      if (s->empty()) fail(e.source(), std::string(what).append(": empty string"));
      out.push_back(*s);
    }
    return out;
  }

  void roles(const toml::node& n, AclModel& m) const {
    for (auto&& [role, def] : table(n, "roles")) {
      name(role, "role name");
      const std::string where = std::string("roles.").append(role.str());
      std::vector<std::string>& parents = m.parents[std::string(role.str())];
      for (auto&& [key, value] : table(def, where)) {
        if (key != "parents")
          fail(key.source(), std::string(where)
                                 .append(": unknown key '")
                                 .append(key.str())
                                 .append("' (expected parents)"));
        parents = names(value, std::string(where).append(".parents"), true);
      }
    }
  }

  void users(const toml::node& n, AclModel& m) const {
    for (auto&& [user, roles] : table(n, "users")) {
      name(user, "user name");
      m.users[std::string(user.str())] =
          names(roles, std::string("users.").append(user.str()), true);
    }
  }

  void rules(std::string_view kind, const toml::node& n, AclModel& m) const {
    const std::string what = std::string("[[").append(kind).append("]]");
    const toml::array* a = n.as_array();
    if (a == nullptr || !a->is_array_of_tables())
      fail(n.source(), std::string(kind).append(": expected ").append(what).append(" tables"));
    for (const toml::node& e : *a) {
      const toml::table& t = *e.as_table();
      AclModel::Rule r{.deny = kind == "deny"};
      for (auto&& [key, value] : t) {
        std::vector<std::string>* field = key == "roles"         ? &r.roles
                                          : key == "resources"   ? &r.resources
                                          : key == "permissions" ? &r.permissions
                                                                 : nullptr;
        if (field == nullptr)
          fail(key.source(), std::string(what)
                                 .append(": unknown key '")
                                 .append(key.str())
                                 .append("' (expected roles, resources, permissions)"));
        *field = names(value, std::string(what).append(".").append(key.str()), false);
      }
      for (auto [field, key] : {std::pair{&r.roles, "roles"},
                                {&r.resources, "resources"},
                                {&r.permissions, "permissions"}})
        if (field->empty())
          fail(t.source(), std::string(what).append(": missing '").append(key).append("'"));
      m.rules.push_back(std::move(r));
    }
  }

  std::string_view source_;
};

}  // namespace

AclModel parse_acl(std::string_view text, std::string_view source) {
  return Parser(source).parse(text);
}

AclModel load_acl_file(const std::string& path) {
  // stdio rather than an ifstream: a directory opens "fine" and only the read fails, which an
  // ifstream's rdbuf() copy would hide as an empty (and so valid, all-denying) ACL.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  std::string text;
  if (f) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f.get())) > 0;) text.append(buf, n);
  }
  if (!f || std::ferror(f.get()))
    throw AclError(std::string(path).append(": cannot read: ").append(std::strerror(errno)));
  return parse_acl(text, path);
}

}  // namespace wsedge::auth
