// Token verification against keys made here with OpenSSL and tokens signed here: every
// algorithm, every way a token can be wrong (and never kNone for one), the claims with their
// leeway edges, key loading from PEM, secret files and JWK Sets, and tokens minted by
// python3-jwt (tests/auth/vectors) as an independent signer.
#include "auth/jwt.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "auth_test_keys.hpp"

#ifndef WSEDGE_AUTH_VECTORS
#error "WSEDGE_AUTH_VECTORS must name tests/auth/vectors"
#endif

namespace wsedge::auth {
namespace {

using test::TestKey;

constexpr std::int64_t kNow = 1800000000;
const std::string kSecret256(32, 's'), kSecret384(48, 't'), kSecret512(64, 'u');

std::string exp_in(std::int64_t seconds) {
  return std::string(R"({"sub":"u1","exp":)").append(std::to_string(kNow + seconds)).append("}");
}

std::string header(Alg alg, std::string_view kid) {
  std::string h = std::string(R"({"alg":")").append(alg_name(alg)).append("\"");
  if (!kid.empty()) h.append(R"(,"kid":")").append(kid).append("\"");
  return h.append(R"(,"typ":"JWT"})");
}

// One key per algorithm, made once for the suite, with a KeySet loaded from files.
struct Keys {
  TestKey es256 = test::ec_key("P-256"), es384 = test::ec_key("P-384"), rs256 = test::rsa_key(2048),
          ps256 = test::rsa_key(2048), ed = test::ed25519_key();
  test::TempDir dir;
  KeySet set;
  Keys() {
    KeySource src;
    src.secret_files = {{Alg::kHS256, dir.write("hs256.key", kSecret256 + "\n")},
                        {Alg::kHS384, dir.write("hs384.key", kSecret384)},
                        {Alg::kHS512, dir.write("hs512.key", kSecret512)}};
    src.public_key_files = {dir.write("es256.pem", es256.public_pem()),
                            dir.write("es384.pem", es384.public_pem()),
                            dir.write("rs256.pem", rs256.public_pem()),
                            dir.write("ps256.pem", ps256.public_pem()) + ";alg=PS256",
                            dir.write("ed.pem", ed.public_pem())};
    set = KeySet::load(src);
  }
  const TestKey* key(Alg a) const {
    switch (a) {
      case Alg::kES256:
        return &es256;
      case Alg::kES384:
        return &es384;
      case Alg::kRS256:
        return &rs256;
      case Alg::kPS256:
        return &ps256;
      case Alg::kEdDSA:
        return &ed;
      default:
        return nullptr;
    }
  }
  static std::string_view secret(Alg a) {
    return a == Alg::kHS256 ? kSecret256 : a == Alg::kHS384 ? kSecret384 : kSecret512;
  }
  static std::string kid(Alg a) {
    return a == Alg::kEdDSA ? "ed" : [&] {
      std::string k(alg_name(a));
      for (char& c : k) c = static_cast<char>(std::tolower(c));
      return k;
    }();
  }
  // A token for `alg`, signed with this suite's key for it, with the given payload.
  std::string token(Alg alg, std::string_view payload, std::string_view kid = {}) const {
    return test::make_token(alg, key(alg), secret(alg), header(alg, kid), payload);
  }
};

const Keys& keys() {
  static const Keys k;
  return k;
}

constexpr Alg kAll[] = {Alg::kHS256, Alg::kHS384, Alg::kHS512, Alg::kES256,
                        Alg::kES384, Alg::kRS256, Alg::kPS256, Alg::kEdDSA};

TokenError check(std::string_view token, const VerifyOptions& opts = {},
                 const KeySet& set = keys().set) {
  Claims c;
  return verify(token, set, opts, kNow, c);
}

std::string payload_token(std::string_view payload) {
  return keys().token(Alg::kHS256, payload);
}

TEST(AuthJwt, EveryAlgorithmVerifies) {
  for (Alg a : kAll) {
    for (std::string kid : {Keys::kid(a), std::string()}) {  // named, and the only one of its alg
      Claims c;
      std::string t = keys().token(a, R"({"sub":"alice","exp":1800000600,"iat":1800000000})", kid);
      EXPECT_EQ(verify(t, keys().set, {}, kNow, c), TokenError::kNone) << alg_name(a) << kid;
      EXPECT_EQ(c.sub, "alice");
      EXPECT_EQ(c.exp, 1800000600);
      EXPECT_EQ(c.iat, 1800000000);
    }
  }
}

TEST(AuthJwt, WrongKeyOrTamperedTokenFails) {
  TestKey other_ec = test::ec_key("P-256"), other_ed = test::ed25519_key();
  std::string payload = exp_in(60);
  EXPECT_EQ(
      check(test::make_token(Alg::kES256, &other_ec, {}, header(Alg::kES256, "es256"), payload)),
      TokenError::kBadSignature);
  EXPECT_EQ(check(test::make_token(Alg::kEdDSA, &other_ed, {}, header(Alg::kEdDSA, ""), payload)),
            TokenError::kBadSignature);
  EXPECT_EQ(check(test::make_token(Alg::kHS256, nullptr, std::string(32, 'x'),
                                   header(Alg::kHS256, ""), payload)),
            TokenError::kBadSignature);
  // RS256 and PS256 keys are both RSA: each one's signature fails under the other's key.
  std::string rs =
      test::make_token(Alg::kRS256, &keys().rs256, {}, header(Alg::kPS256, ""), payload);
  EXPECT_EQ(check(rs), TokenError::kBadSignature);
  for (Alg a : kAll) {
    std::string t = keys().token(a, payload);
    std::size_t dot = t.find('.');
    std::string tampered =
        t.substr(0, dot + 1) + test::b64url(exp_in(6000)) + t.substr(t.rfind('.'));
    EXPECT_EQ(check(tampered), TokenError::kBadSignature) << alg_name(a);
    EXPECT_EQ(ERR_peek_error(), 0u) << alg_name(a);  // nothing left for a TLS connection to trip on
    std::string flipped = t;
    flipped.back() = flipped.back() == 'A' ? 'Q' : 'A';
    EXPECT_NE(check(flipped), TokenError::kNone) << alg_name(a);
  }
}

TEST(AuthJwt, EcdsaSignatureMustBeRawOfExactLength) {
  std::string t = keys().token(Alg::kES256, exp_in(60));
  std::string input = t.substr(0, t.rfind('.'));
  std::string sig;
  ASSERT_TRUE(base64url_decode(t.substr(t.rfind('.') + 1), sig));
  ASSERT_EQ(sig.size(), 64u);
  EXPECT_EQ(check(input + "." + test::b64url(sig.substr(0, 63))), TokenError::kBadSignature);
  EXPECT_EQ(check(input + "." + test::b64url(sig + "x")), TokenError::kBadSignature);
  EXPECT_EQ(check(input + "."), TokenError::kBadSignature);
}

TEST(AuthJwt, AlgNoneAndUnknownAlgorithms) {
  std::string payload = test::b64url(exp_in(60));
  for (std::string_view h :
       {R"({"alg":"none"})", R"({"alg":"None"})", R"({"alg":"hs256"})", R"({"alg":"RS512"})",
        R"({"alg":256})", R"({"typ":"JWT"})", R"({"alg":null})"}) {
    EXPECT_EQ(check(test::b64url(h) + "." + payload + "."), TokenError::kUnsupportedAlg) << h;
    EXPECT_EQ(check(test::b64url(h) + "." + payload + ".c2ln"), TokenError::kUnsupportedAlg) << h;
  }
}

TEST(AuthJwt, AlgorithmConfusionNeverVerifies) {
  // Only the RSA public key is loaded; the attacker HMACs with its PEM bytes as the secret.
  test::TempDir dir;
  KeySource src;
  src.public_key_files = {dir.write("rsa.pem", keys().rs256.public_pem())};
  KeySet only_rsa = KeySet::load(src);
  std::string pem = keys().rs256.public_pem();
  for (std::string_view kid : {"rsa", ""}) {
    std::string t =
        test::make_token(Alg::kHS256, nullptr, pem, header(Alg::kHS256, kid), exp_in(60));
    TokenError e = check(t, {}, only_rsa);
    EXPECT_TRUE(e == TokenError::kUnknownKey || e == TokenError::kUnsupportedAlg) << reason(e);
  }
  EXPECT_EQ(only_rsa.find("rsa", Alg::kHS256), nullptr);
  EXPECT_NE(only_rsa.find("rsa", Alg::kRS256), nullptr);
}

TEST(AuthJwt, UnknownKid) {
  EXPECT_EQ(check(keys().token(Alg::kHS256, exp_in(60), "nope")), TokenError::kUnknownKey);
  // A kid naming a key of another algorithm is no key for this one.
  EXPECT_EQ(check(keys().token(Alg::kHS256, exp_in(60), "hs384")), TokenError::kUnknownKey);
}

TEST(AuthJwt, ExpiryWithLeeway) {
  VerifyOptions o;  // leeway 30
  EXPECT_EQ(check(payload_token(exp_in(-31)), o), TokenError::kExpired);
  EXPECT_EQ(check(payload_token(exp_in(-30)), o), TokenError::kNone);
  o.leeway_s = 0;
  EXPECT_EQ(check(payload_token(exp_in(-1)), o), TokenError::kExpired);
  EXPECT_EQ(check(payload_token(exp_in(0)), o), TokenError::kNone);
  // A fractional exp is floored; an exponent form is accepted.
  EXPECT_EQ(check(payload_token(R"({"sub":"a","exp":1799999969.99})")), TokenError::kExpired);
  EXPECT_EQ(check(payload_token(R"({"sub":"a","exp":1.8e9})")), TokenError::kNone);
  EXPECT_EQ(check(payload_token(R"({"sub":"a","exp":1e30})")), TokenError::kBadClaims);
}

TEST(AuthJwt, NotBeforeAndIssuedAtWithLeeway) {
  auto with = [](std::string_view name, std::int64_t delta) {
    return payload_token(std::string(R"({"sub":"a","exp":1800009999,")")
                             .append(name)
                             .append("\":")
                             .append(std::to_string(kNow + delta))
                             .append("}"));
  };
  EXPECT_EQ(check(with("nbf", 30)), TokenError::kNone);
  EXPECT_EQ(check(with("nbf", 31)), TokenError::kNotYetValid);
  EXPECT_EQ(check(with("iat", 30)), TokenError::kNone);
  EXPECT_EQ(check(with("iat", 31)), TokenError::kIssuedInFuture);
  EXPECT_EQ(check(with("nbf", -1000)), TokenError::kNone);
  EXPECT_EQ(check(payload_token(R"({"sub":"a","exp":1800009999,"nbf":"1"})")),
            TokenError::kBadClaims);
  EXPECT_EQ(check(payload_token(R"({"sub":"a","exp":1800009999,"iat":true})")),
            TokenError::kBadClaims);
}

TEST(AuthJwt, ExpRequiredUnlessConfigured) {
  std::string t = payload_token(R"({"sub":"a"})");
  EXPECT_EQ(check(t), TokenError::kBadClaims);
  VerifyOptions o;
  o.require_exp = false;
  Claims c;
  EXPECT_EQ(verify(t, keys().set, o, kNow, c), TokenError::kNone);
  EXPECT_EQ(c.exp, 0);
  EXPECT_EQ(check(payload_token(R"({"sub":"a","exp":"1800000060"})")), TokenError::kBadClaims);
}

TEST(AuthJwt, SubjectRolesChannelsInfo) {
  Claims c;
  std::string t = payload_token(
      R"({"sub":"b\u00f6b","exp":1800000060,"roles":["admin","chat:write","a.b-c_d"],)"
      R"("channels":["room/1","x"],"info":{"name":"Bob","tags":[1,2]}})");
  ASSERT_EQ(verify(t, keys().set, {}, kNow, c), TokenError::kNone);
  EXPECT_EQ(c.sub,
            "b\xC3\xB6"
            "b");
  EXPECT_EQ(c.roles, (std::vector<std::string>{"admin", "chat:write", "a.b-c_d"}));
  EXPECT_EQ(c.channels, (std::vector<std::string>{"room/1", "x"}));
  EXPECT_EQ(c.info, R"({"name":"Bob","tags":[1,2]})");

  auto claims = [](std::string_view extra) {
    return payload_token(std::string(R"({"sub":"a","exp":1800000060)").append(extra).append("}"));
  };
  std::string many(R"(,"roles":[)");
  for (int i = 0; i < 65; ++i) many.append(i ? ",\"r\"" : "\"r\"");
  many += "]";
  for (std::string_view bad : std::initializer_list<std::string_view>{
           R"(,"roles":"admin")", R"(,"roles":["a b"])", R"(,"roles":[""])", R"(,"roles":[1])",
           R"(,"channels":[""])", R"(,"channels":["a\u0000"])", R"(,"channels":{})",
           std::string_view(many)})
    EXPECT_EQ(check(claims(bad)), TokenError::kBadClaims) << bad;
  EXPECT_EQ(check(claims(R"(,"roles":[])")), TokenError::kNone);
  std::string long_role = std::string(R"(,"roles":[")").append(129, 'r').append("\"]");
  EXPECT_EQ(check(claims(long_role)), TokenError::kBadClaims);
  std::string long_channel = std::string(R"(,"channels":[")").append(256, 'c').append("\"]");
  EXPECT_EQ(check(claims(long_channel)), TokenError::kBadClaims);
  std::string big_info = std::string(R"(,"info":")").append(4095, 'i').append("\"");
  EXPECT_EQ(check(claims(big_info)), TokenError::kBadClaims);  // 4097 bytes with its quotes
  big_info = std::string(R"(,"info":")").append(4094, 'i').append("\"");
  EXPECT_EQ(check(claims(big_info)), TokenError::kNone);

  for (std::string_view sub : std::initializer_list<std::string_view>{
           R"({"exp":1800000060})", R"({"sub":"","exp":1800000060})",
           R"({"sub":7,"exp":1800000060})", R"({"sub":"a\nb","exp":1800000060})",
           R"({"sub":"\u007f","exp":1800000060})"})
    EXPECT_EQ(check(payload_token(sub)), TokenError::kBadClaims) << sub;
  std::string long_sub =
      std::string(R"({"sub":")").append(257, 'x').append(R"(","exp":1800000060})");
  EXPECT_EQ(check(payload_token(long_sub)), TokenError::kBadClaims);
  EXPECT_EQ(check(payload_token(R"([1,2])")), TokenError::kMalformed);
  EXPECT_EQ(check(payload_token(R"({"sub":)")), TokenError::kMalformed);
}

TEST(AuthJwt, AudienceAndIssuer) {
  VerifyOptions o;
  o.audiences = {"wsedge", "other"};
  auto with = [](std::string_view extra) {
    return payload_token(std::string(R"({"sub":"a","exp":1800000060)").append(extra).append("}"));
  };
  EXPECT_EQ(check(with(R"(,"aud":"wsedge")"), o), TokenError::kNone);
  EXPECT_EQ(check(with(R"(,"aud":["x","other"])"), o), TokenError::kNone);
  EXPECT_EQ(check(with(R"(,"aud":["x","y"])"), o), TokenError::kBadAudience);
  EXPECT_EQ(check(with(R"(,"aud":"WSEDGE")"), o), TokenError::kBadAudience);
  EXPECT_EQ(check(with(""), o), TokenError::kBadAudience);
  EXPECT_EQ(check(with(R"(,"aud":["wsedge",1])"), o), TokenError::kBadClaims);
  EXPECT_EQ(check(with(R"(,"aud":7)"), o), TokenError::kBadClaims);
  EXPECT_EQ(check(with(R"(,"aud":"anything")")), TokenError::kNone);  // none configured

  VerifyOptions i;
  i.issuer = "https://issuer.example";
  EXPECT_EQ(check(with(R"(,"iss":"https://issuer.example")"), i), TokenError::kNone);
  EXPECT_EQ(check(with(R"(,"iss":"https://issuer.example/")"), i), TokenError::kBadIssuer);
  EXPECT_EQ(check(with(""), i), TokenError::kBadIssuer);
  EXPECT_EQ(check(with(R"(,"iss":["https://issuer.example"])"), i), TokenError::kBadClaims);
}

TEST(AuthJwt, TruncatedAtEverySplitPointNeverVerifies) {
  for (Alg a : kAll) {
    std::string t = keys().token(a, exp_in(60), Keys::kid(a));
    ASSERT_EQ(check(t), TokenError::kNone);
    for (std::size_t n = 0; n < t.size(); ++n) {
      EXPECT_NE(check(std::string_view(t).substr(0, n)), TokenError::kNone) << alg_name(a) << n;
      EXPECT_NE(check(std::string_view(t).substr(n + 1)), TokenError::kNone) << alg_name(a) << n;
    }
  }
}

TEST(AuthJwt, SizeLimit) {
  std::string big = payload_token(
      std::string(R"({"sub":"a","exp":1800000060,"pad":")").append(16 * 1024, 'p').append("\"}"));
  EXPECT_EQ(check(big), TokenError::kTooLarge);
  EXPECT_EQ(check(std::string(16 * 1024, 'a')), TokenError::kTooLarge);
  VerifyOptions o;
  o.max_token = big.size();
  EXPECT_EQ(check(big, o), TokenError::kNone);
}

TEST(AuthJwt, DuplicateMembersAreRefused) {
  EXPECT_EQ(check(payload_token(R"({"sub":"a","exp":1800000060,"sub":"admin"})")),
            TokenError::kMalformed);
  std::string t = test::make_token(Alg::kHS256, nullptr, kSecret256,
                                   R"({"alg":"HS256","alg":"none"})", exp_in(60));
  EXPECT_EQ(check(t), TokenError::kMalformed);
}

TEST(AuthJwt, HeaderChecks) {
  auto with = [](std::string_view h) {
    return test::make_token(Alg::kHS256, nullptr, kSecret256, h, exp_in(60));
  };
  EXPECT_EQ(check(with(R"({"alg":"HS256"})")), TokenError::kNone);
  EXPECT_EQ(check(with(R"({"alg":"HS256","typ":"jwt"})")), TokenError::kNone);
  EXPECT_EQ(check(with(R"({"alg":"HS256","typ":"at+jwt"})")), TokenError::kNone);
  EXPECT_EQ(check(with(R"({"alg":"HS256","typ":"JOSE"})")), TokenError::kMalformed);
  EXPECT_EQ(check(with(R"({"alg":"HS256","typ":1})")), TokenError::kMalformed);
  EXPECT_EQ(check(with(R"({"alg":"HS256","crit":["exp"]})")), TokenError::kMalformed);
  EXPECT_EQ(check(with(R"({"alg":"HS256","kid":5})")), TokenError::kMalformed);
  std::string long_kid = std::string(R"({"alg":"HS256","kid":")").append(129, 'k').append("\"}");
  EXPECT_EQ(check(with(long_kid)), TokenError::kMalformed);
  EXPECT_EQ(check(with(R"(["HS256"])")), TokenError::kMalformed);
  EXPECT_EQ(check(with("not json")), TokenError::kMalformed);
  // Members are matched by their unescaped names, one escape or several in a row.
  EXPECT_EQ(check(with(R"({"alg":"HS256","\u0063rit":[]})")), TokenError::kMalformed);
  EXPECT_EQ(check(with(R"({"\u0061lg":"HS256","t\u0079p":"JOSE"})")), TokenError::kMalformed);
  EXPECT_EQ(check(with(R"({"\u0061l\u0067":"HS256"})")), TokenError::kNone);
}

TEST(AuthJwt, ClaimsAreMatchedUnescaped) {
  EXPECT_EQ(check(payload_token(R"({"\u0073ub":"u1","\u0065xp":1799999000})")),
            TokenError::kExpired);
  Claims c;
  ASSERT_EQ(
      verify(payload_token(R"({"s\u0075b":"u1","exp":1800000060,"r\u006fles":["a"],"\u00e9":1})"),
             keys().set, {}, kNow, c),
      TokenError::kNone);
  EXPECT_EQ(c.sub, "u1");
  EXPECT_EQ(c.roles, std::vector<std::string>{"a"});
}

TEST(AuthJwt, Base64urlIsStrict) {
  std::string t = keys().token(Alg::kHS256, exp_in(60));
  ASSERT_EQ(check(t), TokenError::kNone);
  std::size_t d1 = t.find('.'), d2 = t.rfind('.');
  std::string h = t.substr(0, d1), p = t.substr(d1 + 1, d2 - d1 - 1), s = t.substr(d2 + 1);
  EXPECT_EQ(check(h + "=." + p + "." + s), TokenError::kMalformed);
  EXPECT_EQ(check(h + "." + p + "." + s + "="), TokenError::kMalformed);
  EXPECT_EQ(check(h + "." + p + "." + s + "AA"), TokenError::kMalformed);  // 45 chars: 1 mod 4
  std::string plus = s;
  plus[0] = '+';
  EXPECT_EQ(check(h + "." + p + "." + plus), TokenError::kMalformed);
  // 43 characters carry 258 bits for a 256-bit HMAC: the last 2 must be zero.
  std::string unused = s;
  unused.back() = static_cast<char>(unused.back() + 1);
  EXPECT_EQ(check(h + "." + p + "." + unused), TokenError::kMalformed);
  EXPECT_EQ(check(h + "." + p), TokenError::kMalformed);
  EXPECT_EQ(check(h + "." + p + "." + s + ".x"), TokenError::kMalformed);
  EXPECT_EQ(check("." + p + "." + s), TokenError::kMalformed);
  EXPECT_EQ(check(h + ".." + s), TokenError::kMalformed);
  EXPECT_EQ(check(""), TokenError::kMalformed);
  std::string out;
  EXPECT_TRUE(base64url_decode("", out));
  EXPECT_TRUE(base64url_decode("YWI", out));
  EXPECT_EQ(out, "ab");
  EXPECT_FALSE(base64url_decode("YWJ", out));  // nonzero unused bits
  EXPECT_EQ(out, "ab");                        // a refusal leaves what was there
  EXPECT_FALSE(base64url_decode("YW*j", out));
  EXPECT_EQ(out, "ab");
  EXPECT_TRUE(base64url_decode("Y2Q", out));  // appends
  EXPECT_EQ(out, "abcd");
}

TEST(AuthJwt, ReasonsAndMetricNames) {
  std::set<std::string_view> reasons, metrics;
  for (int i = 0; i < static_cast<int>(TokenError::kCount); ++i) {
    auto e = static_cast<TokenError>(i);
    EXPECT_FALSE(reason(e).empty());
    reasons.insert(reason(e));
    metrics.insert(metric_name(e));
    for (char c : metric_name(e)) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << metric_name(e);
  }
  EXPECT_EQ(reasons.size(), static_cast<std::size_t>(TokenError::kCount));
  EXPECT_EQ(metrics.size(), static_cast<std::size_t>(TokenError::kCount));
  EXPECT_EQ(reason(TokenError::kExpired), "token expired");
  EXPECT_EQ(metric_name(TokenError::kBadSignature), "bad_signature");
}

TEST(AuthJwt, PythonVectors) {
  KeySource src;
  for (const char* name : {"py-es256", "py-ps256", "py-eddsa"})
    src.public_key_files.push_back(std::string(WSEDGE_AUTH_VECTORS "/") + name + ".pem" +
                                   (std::string_view(name) == "py-ps256" ? ";alg=PS256" : ""));
  KeySet set = KeySet::load(src);
  VerifyOptions o;
  o.audiences = {"wsedge"};
  o.issuer = "https://issuer.example";
  for (const char* name : {"py-es256", "py-ps256", "py-eddsa"}) {
    std::ifstream in(std::string(WSEDGE_AUTH_VECTORS "/") + name + ".jwt");
    std::string token;
    ASSERT_TRUE(std::getline(in, token)) << name;
    Claims c;
    EXPECT_EQ(verify(token, set, o, kNow, c), TokenError::kNone) << name;
    EXPECT_EQ(c.sub, "user-42");
    EXPECT_EQ(c.roles, (std::vector<std::string>{"admin", "chat:write"}));
    EXPECT_EQ(c.info, R"({"name":"Zo\u00eb","n":1})");
  }
}

// Key loading.

std::string jwks(std::string_view members) {
  return std::string(R"({"keys":[{)").append(members).append("}]}");
}

KeySet load_jwks(const test::TempDir& dir, std::string_view text) {
  KeySource src;
  src.jwks_files = {dir.write("set.json", text)};
  return KeySet::load(src);
}

std::string load_error(const KeySource& src) {
  try {
    KeySet::load(src);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

std::string jwks_error(const test::TempDir& dir, std::string_view text) {
  KeySource src;
  src.jwks_files = {dir.write("set.json", text)};
  return load_error(src);
}

TEST(AuthKeys, JwksOfEveryKeyType) {
  test::TempDir dir;
  struct Case {
    Alg alg;
    std::string members;
  };
  const Keys& k = keys();
  std::string oct =
      std::string(R"("kty":"oct","alg":"HS384","k":")") + test::b64url(kSecret384) + "\"";
  for (const Case& c :
       {Case{Alg::kRS256, test::jwk_members(k.rs256)},
        Case{Alg::kPS256, test::jwk_members(k.ps256) + R"(,"alg":"PS256")"},
        Case{Alg::kES256, test::jwk_members(k.es256) + R"(,"use":"sig")"},
        Case{Alg::kES384, test::jwk_members(k.es384) + R"(,"d":"private-ignored")"},
        Case{Alg::kEdDSA, test::jwk_members(k.ed) + R"(,"alg":"EdDSA")"}, Case{Alg::kHS384, oct}}) {
    KeySet set = load_jwks(dir, jwks(c.members + R"(,"kid":"j1")"));
    ASSERT_EQ(set.size(), 1u) << c.members;
    EXPECT_NE(set.find("j1", c.alg), nullptr) << c.members;
    Claims out;
    EXPECT_EQ(verify(k.token(c.alg, exp_in(60), "j1"), set, {}, kNow, out), TokenError::kNone)
        << c.members;
  }
  // A key for encryption is skipped, not refused.
  KeySet set = load_jwks(dir, std::string(R"({"keys":[{)") + test::jwk_members(k.es256) +
                                  R"(,"use":"enc"},{"kty":"whatever","use":"enc"}]})");
  EXPECT_TRUE(set.empty());
}

TEST(AuthKeys, JwksRefusesBadKeys) {
  test::TempDir dir;
  const Keys& k = keys();
  std::string ec = test::jwk_members(k.es256);
  // Move the point off the curve: change y's first character.
  std::string off = ec;
  std::size_t y = off.find(R"("y":")") + 5;
  off[y] = off[y] == 'A' ? 'B' : 'A';
  TestKey small = test::rsa_key(1024);
  struct Case {
    std::string text, error;
  };
  for (const Case& c : {
           Case{jwks(off), "EC point not on the curve"},
           Case{jwks(test::jwk_members(small)), "RSA key under 2048 bits"},
           Case{jwks(R"("kty":"oct","k":")" + test::b64url(kSecret256) + "\""), "needs an HS256"},
           Case{jwks(ec + R"(,"alg":"RS256")"), "alg does not match"},
           Case{jwks(ec + R"(,"alg":"ES384")"), "alg does not match"},
           Case{jwks(test::jwk_members(k.rs256) + R"(,"alg":"HS256")"), "alg does not match"},
           Case{jwks(R"("kty":"oct","alg":"ES256","k":")" + test::b64url(kSecret256) + "\""),
                "needs an HS256"},
           Case{jwks(R"("kty":"oct","alg":"HS256","k":")" + test::b64url(std::string(31, 'k')) +
                     "\""),
                "shorter than 32"},
           Case{jwks(ec + R"(,"alg":"ES512")"), "unsupported alg"},
           Case{jwks(R"("kty":"EC","crv":"P-521","x":"AA","y":"AA")"), "unsupported crv"},
           Case{jwks(R"("kty":"XYZ")"), "unsupported kty"},
           Case{jwks(R"("kty":"RSA","n":"AQAB")"), "no \"e\""},
           Case{jwks(R"("kty":"RSA","n":"a+b","e":"AQAB")"), "not base64url"},
           Case{R"({"keys":[{"kty":"oct","kty":"oct"}]})", "not valid JSON"},
           Case{R"({"keys":{}})", "no \"keys\" array"},
           Case{R"({"keys":[1]})", "keys[0]: not an object"},
       }) {
    std::string e = jwks_error(dir, c.text);
    EXPECT_NE(e.find(c.error), std::string::npos) << c.text << " -> " << e;
    EXPECT_EQ(e.rfind(dir.path + "/set.json: ", 0), 0u) << e;
    EXPECT_EQ(ERR_peek_error(), 0u) << e;  // OpenSSL's queue is left clean for TLS
  }
}

TEST(AuthKeys, SecretAndPemFiles) {
  test::TempDir dir;
  KeySource src;
  src.secret_files = {{Alg::kHS256, dir.write("short.key", std::string(31, 'k') + "\n")}};
  std::string e = load_error(src);
  EXPECT_NE(e.find("short.key: secret shorter than 32 bytes for HS256"), std::string::npos) << e;
  EXPECT_EQ(e.find("kkkk"), std::string::npos);  // never the key material
  src.secret_files = {{Alg::kHS512, dir.write("k.key", std::string(63, 'k'))}};
  EXPECT_NE(load_error(src).find("shorter than 64"), std::string::npos);
  src.secret_files = {{Alg::kES256, dir.write("k.key", std::string(64, 'k'))}};
  EXPECT_NE(load_error(src), "");
  src.secret_files = {{Alg::kHS256, dir.path + "/missing.key"}};
  EXPECT_NE(load_error(src).find("missing.key: cannot open"), std::string::npos);

  KeySource pem;
  TestKey small = test::rsa_key(1024);
  pem.public_key_files = {dir.write("small.pem", small.public_pem())};
  EXPECT_NE(load_error(pem).find("small.pem: RSA key under 2048 bits"), std::string::npos);
  pem.public_key_files = {dir.write("ec.pem", keys().es256.public_pem()) + ";alg=PS256"};
  EXPECT_NE(load_error(pem).find("alg does not match"), std::string::npos);
  pem.public_key_files = {dir.write("rsa.pem", keys().rs256.public_pem()) + ";alg=HS256"};
  EXPECT_NE(load_error(pem).find("unsupported ;alg= suffix"), std::string::npos);
  pem.public_key_files = {dir.write("junk.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n")};
  EXPECT_NE(load_error(pem).find("junk.pem: not a PEM public key"), std::string::npos);
  EXPECT_EQ(ERR_peek_error(), 0u);
  // Two files with the same name in different directories give the same kid.
  std::filesystem::create_directory(dir.path + "/b");
  pem.public_key_files = {dir.write("k.pem", keys().es256.public_pem()),
                          dir.write("b/k.pem", keys().ed.public_pem())};
  EXPECT_NE(load_error(pem).find("duplicate kid \"k\""), std::string::npos);
}

TEST(AuthKeys, FindSemantics) {
  const KeySet& set = keys().set;
  EXPECT_EQ(set.size(), 8u);
  ASSERT_NE(set.find("es256", Alg::kES256), nullptr);
  EXPECT_EQ(set.find("es256", Alg::kES256)->kid, "es256");
  EXPECT_EQ(set.find("es256", Alg::kES384), nullptr);  // the kid's key is pinned to ES256
  EXPECT_EQ(set.find("ps256", Alg::kRS256), nullptr);
  EXPECT_EQ(set.find("ps256", Alg::kPS256)->alg, Alg::kPS256);
  EXPECT_EQ(set.find("", Alg::kHS384)->kid, "hs384");  // the only HS384 key
  EXPECT_EQ(set.find("missing", Alg::kHS256), nullptr);

  // Two keys of one algorithm: a token without kid cannot pick, so it gets none.
  test::TempDir dir;
  KeySource src;
  src.secret_files = {{Alg::kHS256, dir.write("a.key", kSecret256)},
                      {Alg::kHS256, dir.write("b.key", std::string(40, 'b'))}};
  KeySet two = KeySet::load(src);
  EXPECT_EQ(two.find("", Alg::kHS256), nullptr);
  EXPECT_EQ(two.find("b", Alg::kHS256)->secret, std::string(40, 'b'));
  EXPECT_EQ(two.find("", Alg::kES256), nullptr);
  EXPECT_TRUE(KeySet().empty());
  EXPECT_EQ(KeySet().find("", Alg::kHS256), nullptr);
}

TEST(AuthKeys, AddChecksEachKey) {
  KeySet set;
  Key short_secret;
  short_secret.alg = Alg::kHS512;
  short_secret.secret = std::string(63, 'k');
  EXPECT_THROW(set.add(std::move(short_secret)), std::runtime_error);
  Key mismatched;  // an Ed25519 key claiming ES256
  mismatched.alg = Alg::kES256;
  mismatched.pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");  // owned by the Key
  EXPECT_THROW(set.add(std::move(mismatched)), std::runtime_error);
  Key no_key;
  no_key.alg = Alg::kRS256;
  EXPECT_THROW(set.add(std::move(no_key)), std::runtime_error);
  EXPECT_TRUE(set.empty());
  Key ok;
  ok.kid = "k";
  ok.secret = kSecret256;
  set.add(std::move(ok));
  Key again;
  again.kid = "k";
  again.alg = Alg::kHS384;
  again.secret = kSecret384;
  EXPECT_THROW(set.add(std::move(again)), std::runtime_error);
  EXPECT_EQ(set.size(), 1u);
}

TEST(AuthKeys, KidFromPathAndAlgNames) {
  EXPECT_EQ(kid_from_path("keys/2026-11.pem"), "2026-11");
  EXPECT_EQ(kid_from_path("/etc/wsedge/a.b.key"), "a.b");
  EXPECT_EQ(kid_from_path("plain"), "plain");
  EXPECT_EQ(kid_from_path("dir.d/.hidden"), ".hidden");
  for (Alg a : kAll) EXPECT_EQ(alg_from_name(alg_name(a)), a);
  EXPECT_EQ(alg_from_name("none"), std::nullopt);
  EXPECT_EQ(alg_from_name("hs256"), std::nullopt);
  EXPECT_EQ(alg_from_name(""), std::nullopt);
}

}  // namespace
}  // namespace wsedge::auth
