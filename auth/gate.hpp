#pragma once
// One core's auth policy (docs/AUTH.md): who may connect (a token verified at the upgrade, the
// ACL's `connect` on the route) and what a connection may do (`subscribe`, `publish`). An
// application on the engine calls it; it knows no sockets and no ZeroMQ. Share-nothing: every
// core has its own Gate with its own keys, ACL model and compiled snapshot, so a live ACL
// change or a reload is one core's business and never takes a lock.
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth/acl.hpp"
#include "auth/jwt.hpp"
#include "auth/keys.hpp"
#include "auth/token_source.hpp"
#include "engine/counter.hpp"
#include "engine/protocol/http_upgrade.hpp"

namespace wsedge::auth {

enum class Mode : std::uint8_t { kOff, kOptional, kRequired };

struct Options {
  Mode mode = Mode::kOff;
  KeySource keys;
  VerifyOptions verify;
  TokenSources sources;
  std::string anonymous_role = "anonymous";
  std::string acl_file;  // empty: no ACL, everything allowed
  // Auth or an ACL is configured: the application keeps an identity per connection.
  bool enabled() const { return mode != Mode::kOff || !acl_file.empty(); }
};

// Token verifications, in nanoseconds: upper bounds of the buckets (HMAC takes ~1-3 us, ECDSA
// and EdDSA tens, RSA-4096 hundreds).
inline constexpr std::uint64_t kVerifyBoundsNs[] = {2'500,     5'000,     10'000,    25'000,
                                                    50'000,    100'000,   250'000,   500'000,
                                                    1'000'000, 2'500'000, 10'000'000};

struct AuthCounters {
  Counter admitted;   // upgrades with a verified token
  Counter anonymous;  // upgrades without one (optional / off with an ACL)
  Counter refused[static_cast<std::size_t>(TokenError::kCount)];  // 401s by reason
  Counter denied_connect;    // 403: the ACL denies `connect` on the route
  Counter denied_subscribe;  // subscriptions the ACL refused
  Counter denied_publish;    // client publishes the ACL refused
  Counter expired_closes;    // connections closed with 4401
  Counter revoked_closes;    // connections closed with 4403 after an ACL change
  Counter revoked_subscriptions;
  Counter acl_changes;         // live changes applied
  Counter acl_change_refused;  // live changes that did not compile
  Counter refreshes;           // in-band tokens accepted
  Counter reloads;             // SIGHUP reloads of keys and ACL that took
  Counter reload_failures;     // ... that were refused (the old keys and ACL stay)
  // Tokens whose key was found, by its algorithm: [alg][0] verified, [alg][1] refused after it
  // (bad signature, expired, ...). Exported with labels (app/ops_sources.cpp), not in the log.
  static constexpr std::size_t kAlgs = static_cast<std::size_t>(Alg::kEdDSA) + 1;
  Counter by_alg[kAlgs][2];
  // Time inside auth::verify for every token whose key was found (at the upgrade and in-band
  // refreshes), by the key's algorithm: what tokens cost a core, apart from the upgrade.
  FixedHistogram<kVerifyBoundsNs> verify_time[kAlgs];
};

// Calls fn(name, help, type, value) for every auth counter, with the per-reason refusals named
// "auth_refused_<reason>_total".
template <class Fn>
void for_each_auth_metric(const AuthCounters& c, Fn&& fn);

// What the application keeps for each connection while auth or an ACL is on.
struct Identity {
  std::string user;  // the token's `sub`; empty: anonymous
  std::vector<std::string> token_roles;
  std::int64_t exp = 0;     // seconds since 1970; 0: never
  std::int64_t queued = 0;  // the exp of its entry in the core's Expiries; 0: none
  std::string path;         // the route's path, for re-checking `connect` after an ACL change
  Acl::Principal principal;
  std::uint64_t acl_version = 0;  // the snapshot `principal` was compiled against
};

// A live ACL change (the bridge's ACL command): op and the lists it needs.
struct AclChange {
  std::string op;  // add-user-roles, remove-user-roles, remove-user, add-role-parents, ...
  std::string user, role;
  std::vector<std::string> roles, parents, resources, permissions;
};

class Gate {
 public:
  // Loads keys and the ACL file; throws std::runtime_error naming what is wrong (bad config
  // stops the server at start).
  explicit Gate(const Options& opts);

  struct Admission {
    std::uint16_t status = 101;  // 101, 401 or 403
    std::string_view reason;     // refusal: a fixed short text, never token bytes
    std::string_view headers;    // WWW-Authenticate for a 401
    TokenFrom from = TokenFrom::kNone;
  };
  // At the upgrade: finds and verifies the token and checks `connect` on `path` (the path of
  // the route the request matched: the resource is the route, however the client spelled it). On
  // 101 `id` and `claims` describe the connection.
  Admission admit(const protocol::UpgradeRequest& req, std::string_view path, std::int64_t now,
                  Identity& id, Claims& claims);

  // Whether the connection may do `perm` on `resource`; compiles its principal again first
  // when the ACL changed since. Counts nothing: callers count what they refuse.
  bool may(Identity& id, std::string_view resource, PermMask perm);
  PermMask connect_perm() const { return connect_; }
  PermMask subscribe_perm() const { return subscribe_; }
  PermMask publish_perm() const { return publish_; }
  bool has_acl() const { return acl_ != nullptr; }

  // An in-band token (wsedge:refresh): it must verify and name the same user; its exp replaces
  // the connection's. kBadClaims when the user differs.
  TokenError refresh(Identity& id, std::string_view token, std::int64_t now);

  // SIGHUP: loads keys and the ACL file `next` names (the same files again, or a reloaded
  // configuration's), and takes next's verification, token sources and anonymous role. All or
  // nothing: on any failure the old options, keys and ACL stay (logged, counted). Runs on
  // this core's thread. `next.mode` is taken too; whether the Gate exists at all
  // (Options::enabled) is the application's, decided at its start.
  void reload(const Options& next);
  // A live ACL change; false (nothing changed, `error` says why) when it does not apply or
  // compile. The caller re-checks its connections when true.
  bool change(const AclChange& c, std::string& error);
  std::uint64_t acl_version() const { return acl_version_; }

  const AuthCounters& counters() const { return counters_; }
  AuthCounters& counters() { return counters_; }
  const Options& options() const { return opts_; }

 private:
  void install(std::shared_ptr<const Acl> acl);
  void principal(Identity& id);
  Admission refuse(TokenError e, Admission a);
  // verify(), its time recorded by algorithm once a key was found.
  TokenError timed_verify(std::string_view token, std::int64_t now, Claims& claims);

  Options opts_;  // a copy: a reload replaces it while the caller's may be gone
  std::array<std::string, static_cast<std::size_t>(TokenError::kCount)> challenges_;
  KeySet keys_;
  AclModel model_;
  std::shared_ptr<const Acl> acl_;
  std::uint64_t acl_version_ = 1;
  PermMask connect_ = 0, subscribe_ = 0, publish_ = 0;
  AuthCounters counters_;
};

template <class Fn>
void for_each_auth_metric(const AuthCounters& c, Fn&& fn) {
  fn("auth_admitted_total", "upgrades with a verified token", MetricType::kCounter, c.admitted);
  fn("auth_anonymous_total", "upgrades admitted without a token", MetricType::kCounter,
     c.anonymous);
  for (std::size_t r = 1; r < static_cast<std::size_t>(TokenError::kCount); ++r) {
    std::string name = "auth_refused_";
    name.append(metric_name(static_cast<TokenError>(r))).append("_total");
    fn(name.c_str(), "upgrades refused with 401 for this reason", MetricType::kCounter,
       c.refused[r]);
  }
  fn("acl_denied_connect_total", "upgrades refused with 403 by the ACL", MetricType::kCounter,
     c.denied_connect);
  fn("acl_denied_subscribe_total", "subscriptions the ACL refused", MetricType::kCounter,
     c.denied_subscribe);
  fn("acl_denied_publish_total", "client publishes the ACL refused", MetricType::kCounter,
     c.denied_publish);
  fn("auth_expired_closes_total", "connections closed with 4401 when their token expired",
     MetricType::kCounter, c.expired_closes);
  fn("acl_revoked_closes_total", "connections closed with 4403 after an ACL change",
     MetricType::kCounter, c.revoked_closes);
  fn("acl_revoked_subscriptions_total", "subscriptions dropped after an ACL change",
     MetricType::kCounter, c.revoked_subscriptions);
  fn("acl_changes_total", "live ACL changes applied", MetricType::kCounter, c.acl_changes);
  fn("acl_changes_refused_total", "live ACL changes refused (they did not compile)",
     MetricType::kCounter, c.acl_change_refused);
  fn("auth_refreshes_total", "in-band tokens accepted", MetricType::kCounter, c.refreshes);
  fn("auth_reloads_total", "SIGHUP reloads of keys and ACL", MetricType::kCounter, c.reloads);
  fn("auth_reload_failures_total", "SIGHUP reloads refused (the previous keys and ACL stay)",
     MetricType::kCounter, c.reload_failures);
}

}  // namespace wsedge::auth
