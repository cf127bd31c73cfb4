// The ACL model and its compiled snapshot: node_acl's semantics (inheritance, every permission
// from some role, `*`), what wsedge adds (patterns, `{sub}`, deny, default deny), each live edit
// followed by a recompile, and the allocation-free check the publish path relies on.
#include "auth/acl.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "counting_new.hpp"

namespace wsedge::auth {
namespace {

using Names = std::vector<std::string>;

// Compiles `m` and checks `perms` (all of them, as one mask) for `user` holding `token_roles`.
bool can(const AclModel& m, std::string_view user, const Names& token_roles,
         std::string_view resource, const Names& perms) {
  auto acl = Acl::compile(m);
  PermMask mask = 0;
  for (const std::string& p : perms) mask |= acl->perm(p);
  return acl->allowed(acl->principal(user, token_roles), resource, mask);
}

std::string compile_error(const AclModel& m) {
  try {
    Acl::compile(m);
  } catch (const AclError& e) {
    return e.what();
  }
  return "";
}

TEST(Acl, GrandparentGrantsReachGrandchildren) {
  AclModel m;
  m.allow(Names{"guest"}, Names{"chat:lobby"}, Names{"subscribe"});
  m.add_role_parents("member", Names{"guest"});
  m.add_role_parents("admin", Names{"member"});
  m.add_user_roles("alice", Names{"admin"});
  EXPECT_TRUE(can(m, "alice", {}, "chat:lobby", {"subscribe"}));
  EXPECT_TRUE(can(m, "bob", {"member"}, "chat:lobby", {"subscribe"}));
  EXPECT_FALSE(can(m, "alice", {}, "chat:lobby", {"publish"}));
  EXPECT_FALSE(can(m, "carol", {}, "chat:lobby", {"subscribe"}));
  // Inheritance runs up, never down: a parent does not get its children's grants.
  m.allow(Names{"admin"}, Names{"chat:admin"}, Names{"subscribe"});
  EXPECT_FALSE(can(m, "bob", {"member"}, "chat:admin", {"subscribe"}));
  EXPECT_TRUE(can(m, "alice", {}, "chat:admin", {"subscribe"}));
}

TEST(Acl, EveryPermissionFromSomeRole) {
  AclModel m;
  m.allow(Names{"reader"}, Names{"chat:x"}, Names{"subscribe"});
  m.allow(Names{"writer"}, Names{"chat:x"}, Names{"publish"});
  EXPECT_TRUE(can(m, "", {"reader", "writer"}, "chat:x", {"subscribe", "publish"}));
  EXPECT_FALSE(can(m, "", {"reader"}, "chat:x", {"subscribe", "publish"}));
  EXPECT_FALSE(can(m, "", {"writer"}, "chat:x", {"subscribe", "publish"}));
  EXPECT_TRUE(can(m, "", {"writer"}, "chat:x", {"publish"}));
  // One from the role itself, one from its parent.
  m.add_role_parents("writer", Names{"reader"});
  EXPECT_TRUE(can(m, "", {"writer"}, "chat:x", {"subscribe", "publish"}));
}

TEST(Acl, StarPermissionGrantsEveryPermission) {
  AclModel m;
  m.allow(Names{"admin"}, Names{"chat:x"}, Names{"*"});
  m.allow(Names{"guest"}, Names{"chat:x"}, Names{"subscribe", "publish"});
  auto acl = Acl::compile(m);
  auto admin = acl->principal("", Names{"admin"});
  auto guest = acl->principal("", Names{"guest"});
  EXPECT_TRUE(acl->allowed(admin, "chat:x", acl->perm("subscribe") | acl->perm("publish")));
  EXPECT_TRUE(acl->allowed(admin, "chat:x", acl->perm("*")));
  EXPECT_FALSE(acl->allowed(guest, "chat:x", acl->perm("*")));
  EXPECT_FALSE(acl->allowed(admin, "chat:y", acl->perm("subscribe")));
}

TEST(Acl, UnknownPermissionOnlyStarGrantsIt) {
  AclModel m;
  m.allow(Names{"guest"}, Names{"chat:x"}, Names{"subscribe"});
  m.allow(Names{"admin"}, Names{"chat:x"}, Names{"*"});
  m.deny(Names{"banned"}, Names{"chat:x"}, Names{"*"});
  auto acl = Acl::compile(m);
  EXPECT_EQ(acl->perm("connect"), 0u);
  EXPECT_NE(acl->perm("subscribe"), 0u);
  EXPECT_EQ(acl->perm("*") & acl->perm("subscribe"), acl->perm("subscribe"));
  EXPECT_FALSE(acl->allowed(acl->principal("", Names{"guest"}), "chat:x", acl->perm("connect")));
  EXPECT_TRUE(acl->allowed(acl->principal("", Names{"admin"}), "chat:x", acl->perm("connect")));
  EXPECT_FALSE(
      acl->allowed(acl->principal("", Names{"admin", "banned"}), "chat:x", acl->perm("connect")));
}

TEST(Acl, RoleCyclesAreRefusedByName) {
  AclModel self;
  self.add_role_parents("a", Names{"a"});
  EXPECT_NE(compile_error(self).find("a -> a"), std::string::npos) << compile_error(self);

  AclModel ring;
  ring.add_role_parents("x", Names{"root"});
  ring.add_role_parents("a", Names{"b"});
  ring.add_role_parents("b", Names{"c"});
  ring.add_role_parents("c", Names{"x", "a"});
  std::string msg = compile_error(ring);
  EXPECT_NE(msg.find("cycle"), std::string::npos) << msg;
  for (const char* role : {"a -> ", "b -> ", "c -> "})
    EXPECT_NE(msg.find(role), std::string::npos) << msg;
  EXPECT_EQ(msg.find("root"), std::string::npos) << msg;

  // A diamond (two paths to one ancestor) is not a cycle.
  AclModel diamond;
  diamond.add_role_parents("top", Names{"left", "right"});
  diamond.add_role_parents("left", Names{"base"});
  diamond.add_role_parents("right", Names{"base"});
  diamond.allow(Names{"base"}, Names{"r"}, Names{"p"});
  EXPECT_TRUE(can(diamond, "", {"top"}, "r", {"p"}));
}

TEST(Acl, DenyWinsOverAllowFromAnyRole) {
  AclModel m;
  m.allow(Names{"member"}, Names{"chat:x"}, Names{"subscribe", "publish"});
  m.deny(Names{"muted"}, Names{"chat:x"}, Names{"publish"});
  EXPECT_FALSE(can(m, "", {"member", "muted"}, "chat:x", {"publish"}));
  EXPECT_TRUE(can(m, "", {"member", "muted"}, "chat:x", {"subscribe"}));
  EXPECT_FALSE(can(m, "", {"member", "muted"}, "chat:x", {"subscribe", "publish"}));
  EXPECT_TRUE(can(m, "", {"member"}, "chat:x", {"publish"}));
}

TEST(Acl, DenyFromParentWinsOverChildAllow) {
  AclModel m;
  m.deny(Names{"guest"}, Names{"chat:admin"}, Names{"*"});
  m.add_role_parents("admin", Names{"guest"});
  m.allow(Names{"admin"}, Names{"chat:*"}, Names{"*"});
  EXPECT_FALSE(can(m, "", {"admin"}, "chat:admin", {"subscribe"}));
  EXPECT_TRUE(can(m, "", {"admin"}, "chat:lobby", {"subscribe"}));
  // A pattern deny beats an exact allow too.
  m.deny(Names{"guest"}, Names{"secret:*"}, Names{"subscribe"});
  m.allow(Names{"admin"}, Names{"secret:plans"}, Names{"subscribe"});
  EXPECT_FALSE(can(m, "", {"admin"}, "secret:plans", {"subscribe"}));
}

TEST(Acl, TrailingStarMatchesAnySuffix) {
  AclModel m;
  m.allow(Names{"r"}, Names{"chat:*"}, Names{"subscribe"});
  m.allow(Names{"r"}, Names{"news:lo*"}, Names{"publish"});
  for (const char* res : {"chat:lobby", "chat:", "chat:a:b"})
    EXPECT_TRUE(can(m, "", {"r"}, res, {"subscribe"})) << res;
  for (const char* res : {"chat", "chat*", "xchat:lobby", "", "news:lobby"})
    EXPECT_FALSE(can(m, "", {"r"}, res, {"subscribe"})) << res;
  EXPECT_TRUE(can(m, "", {"r"}, "news:lobby", {"publish"}));
  EXPECT_FALSE(can(m, "", {"r"}, "news:l", {"publish"}));

  AclModel all;
  all.allow(Names{"root"}, Names{"*"}, Names{"*"});
  for (const char* res : {"", "/chat", "chat:lobby", "anything"})
    EXPECT_TRUE(can(all, "", {"root"}, res, {"connect"})) << res;
  // A `*` before the end is a literal character.
  AclModel mid;
  mid.allow(Names{"r"}, Names{"a*b"}, Names{"p"});
  EXPECT_TRUE(can(mid, "", {"r"}, "a*b", {"p"}));
  EXPECT_FALSE(can(mid, "", {"r"}, "axb", {"p"}));
}

TEST(Acl, SubIsTheUserName) {
  AclModel m;
  m.allow(Names{"member"}, Names{"user:{sub}"}, Names{"*"});
  m.allow(Names{"member"}, Names{"inbox:{sub}:*"}, Names{"subscribe"});
  m.allow(Names{"member"}, Names{"dm:{sub}:{sub}"}, Names{"publish"});
  EXPECT_TRUE(can(m, "alice", {"member"}, "user:alice", {"publish"}));
  for (const char* res : {"user:bob", "user:alice2", "user:", "user:alic", "user:{sub}"})
    EXPECT_FALSE(can(m, "alice", {"member"}, res, {"publish"})) << res;
  EXPECT_TRUE(can(m, "alice", {"member"}, "inbox:alice:1", {"subscribe"}));
  EXPECT_TRUE(can(m, "alice", {"member"}, "inbox:alice:", {"subscribe"}));
  EXPECT_FALSE(can(m, "alice", {"member"}, "inbox:alice", {"subscribe"}));
  EXPECT_FALSE(can(m, "bob", {"member"}, "inbox:alice:1", {"subscribe"}));
  EXPECT_TRUE(can(m, "alice", {"member"}, "dm:alice:alice", {"publish"}));
  EXPECT_FALSE(can(m, "alice", {"member"}, "dm:alice:bob", {"publish"}));
  // Anonymous: an empty name would turn `user:{sub}` into `user:`; it never matches instead.
  for (const char* res : {"user:", "inbox::", "dm::"})
    EXPECT_FALSE(can(m, "", {"member"}, res, {"publish", "subscribe"})) << res;
  EXPECT_FALSE(can(m, "", {"member"}, "user:", {"publish"}));
}

TEST(Acl, DefaultDeny) {
  AclModel empty;
  EXPECT_FALSE(can(empty, "alice", {"admin"}, "/chat", {"connect"}));
  AclModel m;
  m.allow(Names{"guest"}, Names{"/chat"}, Names{"connect"});
  EXPECT_FALSE(can(m, "alice", {"guest"}, "/other", {"connect"}));
  EXPECT_FALSE(can(m, "alice", {}, "/chat", {"connect"}));
  EXPECT_FALSE(can(m, "alice", {"stranger"}, "/chat", {"connect"}));
}

TEST(Acl, PrincipalUnionsTokenAndFileRoles) {
  AclModel m;
  m.allow(Names{"reader"}, Names{"chat:x"}, Names{"subscribe"});
  m.allow(Names{"writer"}, Names{"chat:x"}, Names{"publish"});
  m.add_user_roles("alice", Names{"writer"});
  auto acl = Acl::compile(m);
  auto p = acl->principal("alice", Names{"reader", "no-such-role"});
  EXPECT_EQ(p.user, "alice");
  EXPECT_EQ(p.roles.size(), 2u);
  EXPECT_TRUE(acl->allowed(p, "chat:x", acl->perm("subscribe") | acl->perm("publish")));
  // Another user with the same token gets only the token's role.
  EXPECT_FALSE(
      acl->allowed(acl->principal("bob", Names{"reader"}), "chat:x", acl->perm("publish")));
}

TEST(Acl, RoleOnlyNamedByAUserExistsWithoutGrants) {
  AclModel m;
  m.add_user_roles("bob", Names{"ghost"});
  auto acl = Acl::compile(m);
  auto p = acl->principal("bob", {});
  EXPECT_EQ(p.roles.size(), 1u);
  EXPECT_FALSE(acl->allowed(p, "/chat", acl->perm("*")));
}

TEST(Acl, PermissionNamesAreLimitedTo31) {
  AclModel m;
  Names perms;
  for (int i = 0; i < 31; ++i) perms.push_back(std::string("p").append(std::to_string(i)));
  m.allow(Names{"r"}, Names{"x"}, perms);
  m.allow(Names{"r"}, Names{"y"}, Names{"*", "p0"});  // `*` and repeats take no bit
  auto acl = Acl::compile(m);
  PermMask all = 0;
  for (const std::string& p : perms) all |= acl->perm(p);
  EXPECT_EQ(all, 0x7FFFFFFFu);
  EXPECT_TRUE(acl->allowed(acl->principal("", Names{"r"}), "x", all));
  m.allow(Names{"r"}, Names{"x"}, Names{"p31"});
  EXPECT_NE(compile_error(m).find("p31"), std::string::npos) << compile_error(m);
}

TEST(Acl, EmptyNamesAreRefused) {
  auto refused = [](auto edit) {
    AclModel m;
    edit(m);
    return !compile_error(m).empty();
  };
  EXPECT_TRUE(refused([](AclModel& m) { m.allow(Names{""}, Names{"x"}, Names{"p"}); }));
  EXPECT_TRUE(refused([](AclModel& m) { m.allow(Names{"r"}, Names{""}, Names{"p"}); }));
  EXPECT_TRUE(refused([](AclModel& m) { m.deny(Names{"r"}, Names{"x"}, Names{""}); }));
  EXPECT_TRUE(refused([](AclModel& m) { m.add_user_roles("", Names{"r"}); }));
  EXPECT_TRUE(refused([](AclModel& m) { m.add_user_roles("u", Names{""}); }));
  EXPECT_TRUE(refused([](AclModel& m) { m.add_role_parents("r", Names{""}); }));
  EXPECT_FALSE(refused([](AclModel& m) { m.add_role_parents("r", {}); }));
}

TEST(AclEdits, UserRoles) {
  AclModel m;
  m.allow(Names{"member"}, Names{"chat:x"}, Names{"publish"});
  EXPECT_FALSE(can(m, "alice", {}, "chat:x", {"publish"}));
  m.add_user_roles("alice", Names{"member", "other"});
  m.add_user_roles("alice", Names{"member"});
  EXPECT_EQ(m.users["alice"].size(), 2u);
  EXPECT_TRUE(can(m, "alice", {}, "chat:x", {"publish"}));
  m.remove_user_roles("alice", Names{"member"});
  EXPECT_FALSE(can(m, "alice", {}, "chat:x", {"publish"}));
  m.add_user_roles("alice", Names{"member"});
  m.remove_user("alice");
  EXPECT_FALSE(can(m, "alice", {}, "chat:x", {"publish"}));
  EXPECT_FALSE(m.users.contains("alice"));
  m.remove_user("nobody");
  m.remove_user_roles("nobody", Names{"member"});
  EXPECT_TRUE(m.users.empty());
}

TEST(AclEdits, RoleParents) {
  AclModel m;
  m.allow(Names{"guest"}, Names{"/chat"}, Names{"connect"});
  EXPECT_FALSE(can(m, "", {"member"}, "/chat", {"connect"}));
  m.add_role_parents("member", Names{"guest"});
  EXPECT_TRUE(can(m, "", {"member"}, "/chat", {"connect"}));
  m.remove_role_parents("member", Names{"guest", "absent"});
  EXPECT_FALSE(can(m, "", {"member"}, "/chat", {"connect"}));
  m.remove_role_parents("absent", Names{"guest"});
  // An edit that makes a cycle is refused at compile; undoing it compiles again.
  m.add_role_parents("member", Names{"guest"});
  m.add_role_parents("guest", Names{"member"});
  EXPECT_FALSE(compile_error(m).empty());
  m.remove_role_parents("guest", Names{"member"});
  EXPECT_TRUE(can(m, "", {"member"}, "/chat", {"connect"}));
}

TEST(AclEdits, RemoveRoleTakesItsRulesLinksAndUsers) {
  AclModel m;
  m.allow(Names{"guest", "member"}, Names{"/chat"}, Names{"connect"});
  m.allow(Names{"member"}, Names{"chat:x"}, Names{"publish"});
  m.add_role_parents("admin", Names{"member"});
  m.add_role_parents("member", Names{"guest"});
  m.add_user_roles("alice", Names{"member"});
  EXPECT_TRUE(can(m, "alice", {}, "chat:x", {"publish"}));
  EXPECT_TRUE(can(m, "", {"admin"}, "chat:x", {"publish"}));
  m.remove_role("member");
  EXPECT_FALSE(can(m, "alice", {}, "chat:x", {"publish"}));
  EXPECT_FALSE(can(m, "", {"admin"}, "chat:x", {"publish"}));
  EXPECT_FALSE(can(m, "", {"member"}, "/chat", {"connect"}));
  EXPECT_TRUE(can(m, "", {"guest"}, "/chat", {"connect"}));  // the shared rule keeps guest
  EXPECT_FALSE(m.parents.contains("member"));
  EXPECT_TRUE(m.parents["admin"].empty());
  EXPECT_TRUE(m.users["alice"].empty());
  EXPECT_EQ(m.rules.size(), 1u);
  m.remove_role("absent");
  EXPECT_EQ(m.rules.size(), 1u);
}

TEST(AclEdits, RemoveAllowTakesOnlyTheNamedTriples) {
  AclModel m;
  m.allow(Names{"a", "b"}, Names{"r1", "r2"}, Names{"subscribe", "publish"});
  m.remove_allow(Names{"a"}, Names{"r1"}, Names{"publish"});
  EXPECT_FALSE(can(m, "", {"a"}, "r1", {"publish"}));
  EXPECT_TRUE(can(m, "", {"a"}, "r1", {"subscribe"}));
  EXPECT_TRUE(can(m, "", {"a"}, "r2", {"subscribe", "publish"}));
  EXPECT_TRUE(can(m, "", {"b"}, "r1", {"subscribe", "publish"}));
  // `*` removes every permission of those roles on those resources.
  m.remove_allow(Names{"b"}, Names{"r1", "r2"}, Names{"*"});
  EXPECT_FALSE(can(m, "", {"b"}, "r1", {"subscribe"}));
  EXPECT_FALSE(can(m, "", {"b"}, "r2", {"publish"}));
  EXPECT_TRUE(can(m, "", {"a"}, "r2", {"publish"}));
  // Absent triples, and deny rules, are left alone.
  m.deny(Names{"a"}, Names{"r2"}, Names{"subscribe"});
  const std::size_t rules = m.rules.size();
  m.remove_allow(Names{"zz"}, Names{"r1"}, Names{"publish"});
  m.remove_allow(Names{"a"}, Names{"r9"}, Names{"publish"});
  m.remove_allow(Names{"a"}, Names{"r2"}, Names{"connect"});
  EXPECT_EQ(m.rules.size(), rules);
  EXPECT_FALSE(can(m, "", {"a"}, "r2", {"subscribe"}));
  // A named permission does not narrow a `*` grant.
  m.allow(Names{"c"}, Names{"r3"}, Names{"*"});
  m.remove_allow(Names{"c"}, Names{"r3"}, Names{"publish"});
  EXPECT_TRUE(can(m, "", {"c"}, "r3", {"publish"}));
}

TEST(AclEdits, RemoveDenyRestoresTheAllow) {
  AclModel m;
  m.allow(Names{"member"}, Names{"chat:*"}, Names{"publish", "subscribe"});
  m.deny(Names{"member"}, Names{"chat:admin"}, Names{"publish", "subscribe"});
  EXPECT_FALSE(can(m, "", {"member"}, "chat:admin", {"publish"}));
  m.remove_allow(Names{"member"}, Names{"chat:admin"}, Names{"publish"});  // not a deny
  EXPECT_FALSE(can(m, "", {"member"}, "chat:admin", {"publish"}));
  m.remove_deny(Names{"member"}, Names{"chat:admin"}, Names{"publish"});
  EXPECT_TRUE(can(m, "", {"member"}, "chat:admin", {"publish"}));
  EXPECT_FALSE(can(m, "", {"member"}, "chat:admin", {"subscribe"}));
}

// The edge checks every publish: a check, exact or by pattern or `{sub}`, allocates nothing.
TEST(Acl, AllowedDoesNotAllocate) {
  AclModel m;
  for (int i = 0; i < 50; ++i)
    m.allow(Names{"member"}, Names{std::string("chat:").append(std::to_string(i))},
            Names{"publish"});
  m.allow(Names{"member"}, Names{"room:*", "user:{sub}:*"}, Names{"publish"});
  auto acl = Acl::compile(m);
  auto p = acl->principal("alice", Names{"member"});
  const PermMask publish = acl->perm("publish");
  const std::uint64_t before = test::allocations();
  bool ok = acl->allowed(p, "chat:7", publish) &&
            acl->allowed(p, "room:long-name-beyond-sso", publish) &&
            acl->allowed(p, "user:alice:a-long-channel-name-beyond-sso", publish) &&
            !acl->allowed(p, "nothing:matches:this-long-resource-name", publish);
  EXPECT_EQ(test::allocations(), before);
  EXPECT_TRUE(ok);
}

}  // namespace
}  // namespace wsedge::auth
