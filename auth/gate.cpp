#include "auth/gate.hpp"

#include <chrono>
#include <stdexcept>

#include "auth/acl_file.hpp"
#include "engine/log.hpp"

namespace wsedge::auth {
namespace {

// RFC 6750 §3: a request without a token gets the challenge alone; a bad token gets
// error="invalid_token" and a description a person can act on. The descriptions are
// reason()'s fixed texts: nothing of the token or the keys.
std::string challenge(TokenError e) {
  std::string h = "WWW-Authenticate: Bearer realm=\"wsedge\"";
  if (e != TokenError::kMissing) {
    h.append(", error=\"invalid_token\", error_description=\"");
    h.append(reason(e)).append("\"");
  }
  return h.append("\r\n");
}

std::shared_ptr<const Acl> load_acl(const std::string& file, AclModel& model) {
  if (file.empty()) return nullptr;
  model = load_acl_file(file);
  return Acl::compile(model);
}

}  // namespace

Gate::Gate(const Options& opts)
    : opts_(opts), keys_(KeySet::load(opts.keys)), acl_(load_acl(opts.acl_file, model_)) {
  for (std::size_t r = 0; r < challenges_.size(); ++r)
    challenges_[r] = challenge(static_cast<TokenError>(r));
  install(acl_);
}

Gate::Admission Gate::admit(const protocol::UpgradeRequest& req, std::string_view path,
                            std::int64_t now, Identity& id, Claims& claims) {
  Admission a;
  FoundToken t;
  if (opts_.mode != Mode::kOff) t = find_token(req, opts_.sources);
  a.from = t.from;
  if (t.from != TokenFrom::kNone) {
    TokenError e = timed_verify(t.token, now, claims);
    if (claims.alg)
      ++counters_.by_alg[static_cast<std::size_t>(*claims.alg)][e != TokenError::kNone];
    if (e != TokenError::kNone) return refuse(e, a);
    id.user = claims.sub;
    id.token_roles = claims.roles;
    id.exp = claims.exp;
    ++counters_.admitted;
  } else if (opts_.mode == Mode::kRequired) {
    return refuse(TokenError::kMissing, a);
  } else {
    id.token_roles = {opts_.anonymous_role};
    ++counters_.anonymous;
  }
  id.path = path;
  if (acl_) {
    principal(id);
    if (!acl_->allowed(id.principal, path, connect_)) {
      ++counters_.denied_connect;
      a.status = 403;
      a.reason = "forbidden";
    }
  }
  return a;
}

Gate::Admission Gate::refuse(TokenError e, Admission a) {
  auto r = static_cast<std::size_t>(e);
  ++counters_.refused[r];
  a.status = 401;
  a.reason = reason(e);
  a.headers = challenges_[r];
  return a;
}

bool Gate::may(Identity& id, std::string_view resource, PermMask perm) {
  if (!acl_) return true;
  if (id.acl_version != acl_version_) principal(id);
  return acl_->allowed(id.principal, resource, perm);
}

void Gate::principal(Identity& id) {
  id.principal = acl_->principal(id.user, id.token_roles);
  id.acl_version = acl_version_;
}

TokenError Gate::timed_verify(std::string_view token, std::int64_t now, Claims& claims) {
  auto start = std::chrono::steady_clock::now();
  TokenError e = verify(token, keys_, opts_.verify, now, claims);
  if (claims.alg)
    counters_.verify_time[static_cast<std::size_t>(*claims.alg)].record(
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now() - start)
                                       .count()));
  return e;
}

TokenError Gate::refresh(Identity& id, std::string_view token, std::int64_t now) {
  Claims claims;
  TokenError e = timed_verify(token, now, claims);
  // A token for someone else would change who the connection is: reconnect for that.
  if (e == TokenError::kNone && claims.sub != id.user) e = TokenError::kBadClaims;
  if (e != TokenError::kNone) return e;
  id.exp = claims.exp;
  ++counters_.refreshes;
  return e;
}

void Gate::reload(const Options& next) {
  try {
    KeySet keys = KeySet::load(next.keys);
    AclModel model;
    std::shared_ptr<const Acl> acl = load_acl(next.acl_file, model);
    // Both loaded: only now does either replace what serves. An ACL file dropped from the
    // configuration drops the ACL: everything is allowed again, as at a start without one.
    opts_ = next;
    keys_ = std::move(keys);
    model_ = std::move(model);
    install(std::move(acl));
    ++counters_.reloads;
    LOG_INFO("auth_reloaded", log::kv("keys", keys_.size()));
  } catch (const std::exception& e) {
    ++counters_.reload_failures;
    LOG_ERROR("auth_reload_refused", log::kv("error", e.what()),
              log::kv("detail", "the previous keys and ACL stay"));
  }
}

bool Gate::change(const AclChange& c, std::string& error) {
  if (!acl_) {
    error = "no ACL is configured (--acl)";
    return false;
  }
  AclModel m = model_;
  const std::string& op = c.op;
  auto need = [&](bool ok, const char* what) {
    if (!ok) error = op + ": " + what;
    return ok;
  };
  bool ok = true;
  if (op == "add-user-roles" || op == "remove-user-roles") {
    ok = need(!c.user.empty() && !c.roles.empty(), "needs user and roles");
    if (ok && op[0] == 'a') m.add_user_roles(c.user, c.roles);
    if (ok && op[0] == 'r') m.remove_user_roles(c.user, c.roles);
  } else if (op == "remove-user") {
    ok = need(!c.user.empty(), "needs user");
    if (ok) m.remove_user(c.user);
  } else if (op == "add-role-parents" || op == "remove-role-parents") {
    ok = need(!c.role.empty() && !c.parents.empty(), "needs role and parents");
    if (ok && op[0] == 'a') m.add_role_parents(c.role, c.parents);
    if (ok && op[0] == 'r') m.remove_role_parents(c.role, c.parents);
  } else if (op == "remove-role") {
    ok = need(!c.role.empty(), "needs role");
    if (ok) m.remove_role(c.role);
  } else if (op == "allow" || op == "deny" || op == "remove-allow" || op == "remove-deny") {
    ok = need(!c.roles.empty() && !c.resources.empty() && !c.permissions.empty(),
              "needs roles, resources and permissions");
    if (ok && op == "allow") m.allow(c.roles, c.resources, c.permissions);
    if (ok && op == "deny") m.deny(c.roles, c.resources, c.permissions);
    if (ok && op == "remove-allow") m.remove_allow(c.roles, c.resources, c.permissions);
    if (ok && op == "remove-deny") m.remove_deny(c.roles, c.resources, c.permissions);
  } else {
    ok = need(false, "unknown op");
  }
  if (!ok) {
    ++counters_.acl_change_refused;
    return false;
  }
  try {
    std::shared_ptr<const Acl> acl = Acl::compile(m);
    model_ = std::move(m);
    install(std::move(acl));
  } catch (const AclError& e) {
    ++counters_.acl_change_refused;
    error = e.what();
    return false;
  }
  ++counters_.acl_changes;
  return true;
}

void Gate::install(std::shared_ptr<const Acl> acl) {
  acl_ = std::move(acl);
  ++acl_version_;  // every connection's principal is compiled again at its next check
  if (!acl_) return;
  connect_ = acl_->perm("connect");
  subscribe_ = acl_->perm("subscribe");
  publish_ = acl_->perm("publish");
}

}  // namespace wsedge::auth
