#include "acl.hpp"

#include <algorithm>
#include <utility>

namespace wsedge::auth {
namespace {

constexpr std::string_view kStar = "*";
constexpr std::string_view kSub = "{sub}";
// Internally a `*` grant or deny also sets bit 31, which no named permission has: a mask of 0
// (a name no rule mentions) is checked as bit 31 alone, so only `*` grants it and only `*`
// denies it. perm("*") leaves it out: it asks for every named permission.
constexpr PermMask kUnnamed = PermMask{1} << 31;
constexpr PermMask kAllNamed = ~kUnnamed;

bool contains(std::span<const std::string> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

void add_unique(std::vector<std::string>& to, std::span<const std::string> names) {
  for (const std::string& n : names)
    if (!contains(to, n)) to.push_back(n);
}

void erase_listed(std::vector<std::string>& from, std::span<const std::string> names) {
  std::erase_if(from, [&](const std::string& n) { return contains(names, n); });
}

// `names` cut into those listed in `by` and the rest, each in its original order.
std::pair<std::vector<std::string>, std::vector<std::string>> split(
    const std::vector<std::string>& names, std::span<const std::string> by) {
  std::pair<std::vector<std::string>, std::vector<std::string>> out;
  for (const std::string& n : names) (contains(by, n) ? out.first : out.second).push_back(n);
  return out;
}

void need_name(std::string_view name, const char* what) {
  if (name.empty()) throw AclError(std::string("empty ").append(what));
}

}  // namespace

void AclModel::add_user_roles(std::string_view user, std::span<const std::string> roles) {
  add_unique(users[std::string(user)], roles);
}

void AclModel::remove_user_roles(std::string_view user, std::span<const std::string> roles) {
  if (auto it = users.find(std::string(user)); it != users.end()) erase_listed(it->second, roles);
}

void AclModel::remove_user(std::string_view user) {
  users.erase(std::string(user));
}

void AclModel::add_role_parents(std::string_view role, std::span<const std::string> ps) {
  add_unique(parents[std::string(role)], ps);
}

void AclModel::remove_role_parents(std::string_view role, std::span<const std::string> ps) {
  if (auto it = parents.find(std::string(role)); it != parents.end()) erase_listed(it->second, ps);
}

void AclModel::remove_role(std::string_view role) {
  const std::string name(role);
  const std::span<const std::string> one(&name, 1);
  parents.erase(name);
  for (auto& [child, ps] : parents) erase_listed(ps, one);
  for (auto& [user, roles] : users) erase_listed(roles, one);
  for (Rule& r : rules) erase_listed(r.roles, one);
  // A rule left with no role would grant nothing: drop it rather than keep it around.
  std::erase_if(rules, [](const Rule& r) { return r.roles.empty(); });
}

void AclModel::allow(std::span<const std::string> roles, std::span<const std::string> resources,
                     std::span<const std::string> perms) {
  rules.push_back({{roles.begin(), roles.end()},
                   {resources.begin(), resources.end()},
                   {perms.begin(), perms.end()},
                   false});
}

void AclModel::deny(std::span<const std::string> roles, std::span<const std::string> resources,
                    std::span<const std::string> perms) {
  allow(roles, resources, perms);
  rules.back().deny = true;
}

namespace {

// Removes roles x resources x perms from every rule of the given kind. A rule is a cross
// product; what is left of it after taking out another cross product is at most three cross
// products (the roles not named; the named roles on the resources not named; the named roles
// and resources with the permissions not named), so each edit keeps the rules exact and few.
void remove_rules(std::vector<AclModel::Rule>& rules, bool deny, std::span<const std::string> roles,
                  std::span<const std::string> resources, std::span<const std::string> perms) {
  std::vector<AclModel::Rule> out;
  for (AclModel::Rule& r : rules) {
    auto [roles_in, roles_out] = split(r.roles, roles);
    auto [res_in, res_out] = split(r.resources, resources);
    auto [perms_in, perms_out] = contains(perms, kStar)
                                     ? std::pair{r.permissions, std::vector<std::string>{}}
                                     : split(r.permissions, perms);
    if (r.deny != deny || roles_in.empty() || res_in.empty() || perms_in.empty()) {
      out.push_back(std::move(r));
      continue;
    }
    if (!roles_out.empty()) out.push_back({std::move(roles_out), r.resources, r.permissions, deny});
    if (!res_out.empty()) out.push_back({roles_in, std::move(res_out), r.permissions, deny});
    if (!perms_out.empty())
      out.push_back({std::move(roles_in), std::move(res_in), std::move(perms_out), deny});
  }
  rules = std::move(out);
}

}  // namespace

void AclModel::remove_allow(std::span<const std::string> roles,
                            std::span<const std::string> resources,
                            std::span<const std::string> perms) {
  remove_rules(rules, false, roles, resources, perms);
}

void AclModel::remove_deny(std::span<const std::string> roles,
                           std::span<const std::string> resources,
                           std::span<const std::string> perms) {
  remove_rules(rules, true, roles, resources, perms);
}

namespace {

// Every role name the model mentions, sorted: ids follow this order, so a model compiles to the
// same ids (and the same cycle message) every time, whatever the hash maps' order.
std::vector<std::string> role_names(const AclModel& m) {
  std::vector<std::string> names;
  for (const auto& [user, roles] : m.users) names.insert(names.end(), roles.begin(), roles.end());
  for (const auto& [role, ps] : m.parents) {
    names.push_back(role);
    names.insert(names.end(), ps.begin(), ps.end());
  }
  for (const AclModel::Rule& r : m.rules) names.insert(names.end(), r.roles.begin(), r.roles.end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (const std::string& n : names) need_name(n, "role name");
  return names;
}

// Each role's closure (itself and all its ancestors, sorted), by an iterative depth-first walk
// up the parent links: a chain of thousands of roles made by live edits must not overflow the
// stack. Meeting a role that is still on the walk's path is a cycle, refused with its roles.
std::vector<std::vector<std::uint32_t>> closures(
    const std::vector<std::vector<std::uint32_t>>& parents_of,
    const std::vector<std::string>& names) {
  enum : std::uint8_t { kNew, kOnPath, kDone };
  const std::size_t n = parents_of.size();
  std::vector<std::uint8_t> state(n, kNew);
  std::vector<std::vector<std::uint32_t>> closure(n);
  std::vector<std::pair<std::uint32_t, std::size_t>> path;  // role, next parent to visit
  for (std::uint32_t root = 0; root < n; ++root) {
    if (state[root] != kNew) continue;
    state[root] = kOnPath;
    path.push_back({root, 0});
    while (!path.empty()) {
      const std::uint32_t r = path.back().first;
      if (path.back().second < parents_of[r].size()) {
        const std::uint32_t q = parents_of[r][path.back().second++];
        if (state[q] == kOnPath) {
          std::string msg("role parents form a cycle: ");
          auto from = std::find_if(path.begin(), path.end(), [&](auto& e) { return e.first == q; });
          for (auto it = from; it != path.end(); ++it) msg.append(names[it->first]).append(" -> ");
          throw AclError(msg.append(names[q]));
        }
        if (state[q] == kNew) {
          state[q] = kOnPath;
          path.push_back({q, 0});
        }
        continue;
      }
      std::vector<std::uint32_t>& c = closure[r];
      c.push_back(r);
      for (std::uint32_t q : parents_of[r]) c.insert(c.end(), closure[q].begin(), closure[q].end());
      std::sort(c.begin(), c.end());
      c.erase(std::unique(c.begin(), c.end()), c.end());
      state[r] = kDone;
      path.pop_back();
    }
  }
  return closure;
}

// One grant per role, sorted by role: allowed() binary-searches them.
template <class Grant>
void tidy(std::vector<Grant>& gs) {
  std::sort(gs.begin(), gs.end(), [](const Grant& a, const Grant& b) { return a.role < b.role; });
  std::vector<Grant> merged;
  for (const Grant& g : gs) {
    if (!merged.empty() && merged.back().role == g.role) {
      merged.back().allow |= g.allow;
      merged.back().deny |= g.deny;
    } else {
      merged.push_back(g);
    }
  }
  gs = std::move(merged);
}

// Fibonacci hashing: the slot is the top bits of hash * 2^64/phi, which mixes FNV-1a's weak low
// bits into the ones used.
constexpr std::uint64_t kSpread = 0x9E3779B97F4A7C15u;

}  // namespace

Acl::GrantIndex::GrantIndex(Map<std::vector<Grant>> grants) {
  std::size_t size = 2;
  for (shift_ = 63; size < 2 * grants.size(); size *= 2) --shift_;
  slots_.assign(size, 0);
  entries_.reserve(grants.size());
  for (auto& [key, gs] : grants) {
    entries_.push_back({key, hash(key), std::move(gs)});
    std::size_t at = (entries_.back().hash * kSpread) >> shift_;
    while (slots_[at] != 0) at = (at + 1) & (size - 1);
    slots_[at] = static_cast<std::uint32_t>(entries_.size());
  }
}

const std::vector<Acl::Grant>* Acl::GrantIndex::find(std::string_view key, std::uint64_t h) const {
  if (slots_.empty()) return nullptr;
  // At most half full, so an absent key meets an empty slot soon.
  for (std::size_t at = (h * kSpread) >> shift_;; at = (at + 1) & (slots_.size() - 1)) {
    if (slots_[at] == 0) return nullptr;
    const Entry& e = entries_[slots_[at] - 1];
    if (e.hash == h && e.key == key) return &e.grants;
  }
}

std::shared_ptr<const Acl> Acl::compile(const AclModel& m) {
  auto acl = std::make_shared<Acl>();

  for (const AclModel::Rule& r : m.rules)
    for (const std::string& p : r.permissions) {
      need_name(p, "permission name");
      if (p == kStar || acl->perms_.contains(p)) continue;
      if (acl->perms_.size() == kMaxPermissions)
        throw AclError(std::string("more than 31 permission names (the 32nd is '").append(p) +
                       "')");
      acl->perms_.emplace(p, PermMask{1} << acl->perms_.size());
    }

  const std::vector<std::string> names = role_names(m);
  for (std::uint32_t id = 0; id < names.size(); ++id) acl->role_ids_.emplace(names[id], id);
  auto id_of = [&](const std::string& role) { return acl->role_ids_.find(role)->second; };
  std::vector<std::vector<std::uint32_t>> parents_of(names.size());
  for (const auto& [role, ps] : m.parents)
    for (const std::string& p : ps) parents_of[id_of(role)].push_back(id_of(p));
  acl->closure_ = closures(parents_of, names);

  for (const auto& [user, roles] : m.users) {
    need_name(user, "user name");
    std::vector<std::uint32_t>& ids = acl->user_roles_[user];
    for (const std::string& r : roles) ids.push_back(id_of(r));
  }

  Map<std::vector<Grant>> exact, prefixed;
  Map<std::size_t> sub_index;  // resource -> its entry in subs_
  for (const AclModel::Rule& r : m.rules) {
    PermMask mask = 0;
    for (const std::string& p : r.permissions) mask |= p == kStar ? ~PermMask{0} : acl->perms_[p];
    for (const std::string& res : r.resources) {
      need_name(res, "resource");
      std::vector<Grant>* grants;
      if (res.find(kSub) != std::string::npos) {
        auto [it, fresh] = sub_index.emplace(res, acl->subs_.size());
        if (fresh) {
          SubPattern s;
          std::string_view rest(res);
          s.prefix = rest.ends_with('*');
          if (s.prefix) rest.remove_suffix(1);
          for (std::size_t at; (at = rest.find(kSub)) != std::string_view::npos;) {
            s.pieces.emplace_back(rest.substr(0, at));
            rest.remove_prefix(at + kSub.size());
          }
          s.pieces.emplace_back(rest);
          acl->subs_.push_back(std::move(s));
        }
        grants = &acl->subs_[it->second].grants;
      } else if (res.ends_with('*')) {
        grants = &prefixed[res.substr(0, res.size() - 1)];
      } else {
        grants = &exact[res];
      }
      for (const std::string& role : r.roles)
        grants->push_back({id_of(role), r.deny ? 0 : mask, r.deny ? mask : 0});
    }
  }

  for (auto& [res, gs] : exact) tidy(gs);
  for (auto& [res, gs] : prefixed) {
    tidy(gs);
    acl->prefix_lengths_.push_back(res.size());
  }
  for (SubPattern& s : acl->subs_) tidy(s.grants);
  acl->exact_ = GrantIndex(std::move(exact));
  acl->prefixed_ = GrantIndex(std::move(prefixed));
  std::sort(acl->prefix_lengths_.begin(), acl->prefix_lengths_.end());
  acl->prefix_lengths_.erase(std::unique(acl->prefix_lengths_.begin(), acl->prefix_lengths_.end()),
                             acl->prefix_lengths_.end());
  return acl;
}

PermMask Acl::perm(std::string_view name) const {
  if (name == kStar) return kAllNamed;
  auto it = perms_.find(name);
  return it == perms_.end() ? 0 : it->second;
}

Acl::Principal Acl::principal(std::string_view user,
                              std::span<const std::string> token_roles) const {
  Principal p{std::string(user), {}};
  auto add = [&](std::uint32_t id) {
    p.roles.insert(p.roles.end(), closure_[id].begin(), closure_[id].end());
  };
  for (const std::string& r : token_roles)
    if (auto it = role_ids_.find(r); it != role_ids_.end()) add(it->second);
  if (auto it = user_roles_.find(user); it != user_roles_.end())
    for (std::uint32_t id : it->second) add(id);
  std::sort(p.roles.begin(), p.roles.end());
  p.roles.erase(std::unique(p.roles.begin(), p.roles.end()), p.roles.end());
  return p;
}

namespace {

// `resource` against the pieces of a `{sub}` pattern, with `user` between each two, compared in
// place (no string is built per check).
bool sub_matches(const std::vector<std::string>& pieces, bool prefix, std::string_view resource,
                 std::string_view user) {
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0) {
      if (!resource.starts_with(user)) return false;
      resource.remove_prefix(user.size());
    }
    if (!resource.starts_with(pieces[i])) return false;
    resource.remove_prefix(pieces[i].size());
  }
  return prefix || resource.empty();
}

}  // namespace

bool Acl::allowed(const Principal& p, std::string_view resource, PermMask perms) const {
  const PermMask want = perms == 0 ? kUnnamed : perms;
  PermMask granted = 0, denied = 0;
  // Both lists are sorted by role: walk the shorter one and binary-search the longer, so a
  // principal with many roles on a key few roles use (or the reverse) costs the small side.
  auto take = [&](const std::vector<Grant>& grants) {
    if (grants.size() <= p.roles.size()) {
      for (const Grant& g : grants)
        if (std::binary_search(p.roles.begin(), p.roles.end(), g.role)) {
          granted |= g.allow;
          denied |= g.deny;
        }
      return;
    }
    for (std::uint32_t role : p.roles) {
      auto g = std::lower_bound(grants.begin(), grants.end(), role,
                                [](const Grant& a, std::uint32_t r) { return a.role < r; });
      if (g != grants.end() && g->role == role) {
        granted |= g->allow;
        denied |= g->deny;
      }
    }
  };
  if (p.roles.empty()) return false;
  // One pass over the resource hashes it whole for the exact index and, on the way, each of its
  // prefixes whose length some `p*` pattern has, for the pattern index.
  std::uint64_t h = kFnvBasis;
  std::size_t next = 0;  // into prefix_lengths_
  for (std::size_t i = 0;; h = fnv(h, resource[i++])) {
    for (; next < prefix_lengths_.size() && prefix_lengths_[next] == i; ++next)
      if (const std::vector<Grant>* gs = prefixed_.find(resource.substr(0, i), h)) take(*gs);
    if (i == resource.size()) break;
  }
  if (const std::vector<Grant>* gs = exact_.find(resource, h)) take(*gs);
  // An anonymous principal's empty name would make `user:{sub}` match `user:`.
  if (!p.user.empty())
    for (const SubPattern& s : subs_)
      if (sub_matches(s.pieces, s.prefix, resource, p.user)) take(s.grants);
  return (granted & want) == want && (denied & want) == 0;
}

}  // namespace wsedge::auth
