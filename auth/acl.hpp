#pragma once
// Access control lists after node_acl (https://github.com/OptimalBits/node_acl): users have
// roles, roles inherit every grant of their parent roles (transitively), and
// allow(roles, resources, permissions) grants each listed permission on each listed resource to
// each listed role. A check passes only when EVERY requested permission is granted by SOME role
// of the principal or an ancestor of one; `*` as a permission grants them all.
//
// Beyond node_acl:
//   - resource patterns: a trailing `*` matches any suffix (`chat:*` matches `chat:`,
//     `chat:lobby`, `chat:a:b`; `*` alone matches everything), and `{sub}` anywhere is the
//     principal's user name (`user:{sub}` matches `user:alice` for alice only; never for an
//     anonymous principal, whose name is empty);
//   - deny rules, shaped like allow rules, win over any allow from any role for the permissions
//     they name (`*` denies all);
//   - default deny: what no rule grants is refused.
//
// Two halves: AclModel is the mutable source of truth (one per core, edited by live bridge
// commands); Acl is an immutable snapshot compiled from it, which the hot path checks against.
// Role inheritance is flattened into each Principal when it is built (once per connection and
// after a recompile), and rules are indexed by resource, so a check is a few hash lookups and
// never a walk over the role tree.
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wsedge::auth {

struct AclModel {
  struct Rule {
    std::vector<std::string> roles, resources, permissions;
    bool deny = false;
  };
  std::unordered_map<std::string, std::vector<std::string>> users;    // user -> roles
  std::unordered_map<std::string, std::vector<std::string>> parents;  // role -> parent roles
  std::vector<Rule> rules;

  // Live edits, named after node_acl's addUserRoles, removeUserRoles, removeUser,
  // addRoleParents, removeRoleParents, allow, removeAllow and removeRole, plus deny and
  // remove_deny. Removing something absent is a no-op; names are validated by Acl::compile.
  void add_user_roles(std::string_view user, std::span<const std::string> roles);
  void remove_user_roles(std::string_view user, std::span<const std::string> roles);
  void remove_user(std::string_view user);
  // Also declares `role` (with no grants) when it has no parents yet.
  void add_role_parents(std::string_view role, std::span<const std::string> parents);
  void remove_role_parents(std::string_view role, std::span<const std::string> parents);
  // Its rules, its parent links, and it as a parent or as a user's role.
  void remove_role(std::string_view role);
  void allow(std::span<const std::string> roles, std::span<const std::string> resources,
             std::span<const std::string> perms);
  void deny(std::span<const std::string> roles, std::span<const std::string> resources,
            std::span<const std::string> perms);
  // Removes the (role, resource, permission) triples of that cross product from the allow
  // (deny) rules; resources compare as written (a pattern removes that pattern, not what it
  // matches). A `*` among `perms` removes every permission; naming one permission does not
  // narrow a `*` grant (there is no "all but").
  void remove_allow(std::span<const std::string> roles, std::span<const std::string> resources,
                    std::span<const std::string> perms);
  void remove_deny(std::span<const std::string> roles, std::span<const std::string> resources,
                   std::span<const std::string> perms);
};

struct AclError : std::runtime_error {
  using runtime_error::runtime_error;
};

// Permissions interned to bits 0..30 by Acl::perm(); bit 31 is never returned by perm().
using PermMask = std::uint32_t;

class Acl {
 public:
  // Permission names one ACL may use, beside `*`.
  static constexpr std::size_t kMaxPermissions = 31;

  // Throws AclError for a cycle in role parents (naming its roles), more than kMaxPermissions
  // permission names, or an empty user, role, resource or permission name.
  static std::shared_ptr<const Acl> compile(const AclModel& m);

  // The bit of a permission name; 0 when no rule names it (then only a `*` grant grants it, and
  // allowed() with a mask of 0 asks exactly that). `*` gives every bit.
  PermMask perm(std::string_view name) const;

  // A principal compiled against this snapshot: its user name and the closure of its roles
  // (role ids of this snapshot, sorted, each role's ancestors included). Build it again after a
  // recompile: ids do not carry over.
  struct Principal {
    std::string user;
    std::vector<std::uint32_t> roles;
  };
  // The roles the token gave plus those this ACL's users table gives `user`; role names this
  // ACL never mentions grant nothing and are dropped.
  Principal principal(std::string_view user, std::span<const std::string> token_roles) const;

  // True when every permission of `perms` is granted on `resource` by some role of `p` and
  // none is denied by any. Allocation-free: the per-message publish check calls it.
  bool allowed(const Principal& p, std::string_view resource, PermMask perms) const;

 private:
  // One role's grants on one resource key, kept sorted by role.
  struct Grant {
    std::uint32_t role;
    PermMask allow = 0, deny = 0;
  };
  // A resource with `{sub}` in it: the literal pieces around each `{sub}` (one more piece than
  // there are `{sub}`), and whether a trailing `*` lets the last piece be a prefix.
  struct SubPattern {
    std::vector<std::string> pieces;
    bool prefix = false;
    std::vector<Grant> grants;
  };
  // Keys are hashed with FNV-1a, one byte at a time, so that allowed() can hash the resource
  // once and have the hash of each of its prefixes on the way (the pattern index is keyed by
  // prefixes).
  static constexpr std::uint64_t kFnvBasis = 14695981039346656037u;
  static constexpr std::uint64_t fnv(std::uint64_t h, char c) {
    return (h ^ static_cast<unsigned char>(c)) * 1099511628211u;
  }
  static constexpr std::uint64_t hash(std::string_view s) {
    std::uint64_t h = kFnvBasis;
    for (char c : s) h = fnv(h, c);
    return h;
  }
  struct Hash {
    using is_transparent = void;  // string_view lookups build no string
    std::size_t operator()(std::string_view s) const noexcept { return hash(s); }
  };
  template <class V>
  using Map = std::unordered_map<std::string, V, Hash, std::equal_to<>>;

  // The resource index allowed() probes: read-only once built, open addressing over a
  // power-of-two table, probed with the hash allowed() already has. A probe is a multiply, a
  // shift and a compare; std::unordered_map would hash again and divide by a prime each time.
  class GrantIndex {
   public:
    explicit GrantIndex(Map<std::vector<Grant>> grants);
    GrantIndex() = default;
    const std::vector<Grant>* find(std::string_view key, std::uint64_t h) const;
    template <class F>
    void for_each_key(F f) const {
      for (const Entry& e : entries_) f(e.key);
    }

   private:
    struct Entry {
      std::string key;
      std::uint64_t hash;
      std::vector<Grant> grants;
    };
    std::vector<Entry> entries_;
    std::vector<std::uint32_t> slots_;  // 1 + an index into entries_, 0 for an empty slot
    unsigned shift_ = 0;                // 64 - log2(slots_.size())
  };

  Map<PermMask> perms_;
  Map<std::uint32_t> role_ids_;
  std::vector<std::vector<std::uint32_t>> closure_;  // role id -> itself and its ancestors
  Map<std::vector<std::uint32_t>> user_roles_;       // user -> role ids from the users table
  GrantIndex exact_;                                 // resources without patterns
  GrantIndex prefixed_;                              // `p*` without `{sub}`, keyed by `p`
  std::vector<std::size_t> prefix_lengths_;          // the distinct key lengths of prefixed_
  std::vector<SubPattern> subs_;
};

}  // namespace wsedge::auth
