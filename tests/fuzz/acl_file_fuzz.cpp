// Fuzzes the ACL file parser and the compiler behind it (an operator's file, or one a live edit
// produced, must never crash the edge): arbitrary bytes into parse_acl, which may only refuse
// them with AclError; a model that parses goes through Acl::compile, which may only refuse it
// with AclError too; a compiled one answers a few checks. Checks: a principal's roles are sorted
// and unique; default deny (no roles: nothing allowed); and `*` granted means every named
// permission granted.
#include <toml++/toml.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/acl_file.hpp"
#include "fuzz_check.hpp"

using namespace wsedge::auth;
using wsedge::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  AclModel m;
  try {
    m = parse_acl(text, "fuzz.toml");
  } catch (const AclError&) {
    return 0;
  } catch (const toml::parse_error&) {
    return 0;
  }
  std::shared_ptr<const Acl> acl;
  try {
    acl = Acl::compile(m);
  } catch (const AclError&) {
    return 0;
  }
  // Every user and role of the file, and the resources its rules name, as principals and
  // resources to check (with `{sub}` and `*` left in: literal characters in a resource).
  std::vector<std::string> roles;
  for (const auto& [role, parents] : m.parents) roles.push_back(role);
  std::vector<std::string> resources{"", "/chat", "chat:lobby", "user:alice"};
  for (const AclModel::Rule& r : m.rules)
    resources.insert(resources.end(), r.resources.begin(), r.resources.end());
  const PermMask all = acl->perm("*");
  for (const std::string& user : {std::string(), std::string("alice")}) {
    for (std::size_t with = 0; with <= 1; ++with) {
      Acl::Principal p =
          acl->principal(user, with ? std::span(roles) : std::span<const std::string>());
      check(std::is_sorted(p.roles.begin(), p.roles.end()));
      check(std::adjacent_find(p.roles.begin(), p.roles.end()) == p.roles.end());
      for (const std::string& res : resources) {
        bool star = acl->allowed(p, res, all);
        for (std::string_view perm : {"connect", "subscribe", "publish", "other"}) {
          bool ok = acl->allowed(p, res, acl->perm(perm));
          check(!ok || !p.roles.empty());
          check(!star || acl->perm(perm) == 0 || ok);
        }
      }
    }
  }
  return 0;
}
