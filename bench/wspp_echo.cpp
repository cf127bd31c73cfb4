// wspp_echo: the websocketpp baseline. Echo server on the asio config (asio_tls with
// --tls-cert/--tls-key), one thread, logging off.
//   wspp_echo --listen HOST:PORT [--tls-cert FILE --tls-key FILE]
#include "bench/server_args.hpp"

#include <cstdio>
#include <string>
#include <websocketpp/config/asio.hpp>
#include <websocketpp/server.hpp>

using Plain = websocketpp::server<websocketpp::config::asio>;
using Tls = websocketpp::server<websocketpp::config::asio_tls>;

template <class Server>
void serve(Server& s, const wsedge::bench::ServerArgs& args) {
  s.clear_access_channels(websocketpp::log::alevel::all);
  s.clear_error_channels(websocketpp::log::elevel::all);
  s.init_asio();
  s.set_reuse_addr(true);
  s.set_listen_backlog(4096);
  s.set_max_message_size(64 << 20);
  s.set_tcp_post_init_handler([&s](websocketpp::connection_hdl h) {
    s.get_con_from_hdl(h)->get_socket().lowest_layer().set_option(
        boost::asio::ip::tcp::no_delay(true));
  });
  s.set_message_handler([&s](websocketpp::connection_hdl h, typename Server::message_ptr msg) {
    websocketpp::lib::error_code ec;
    s.send(h, msg->get_payload(), msg->get_opcode(), ec);
  });
  s.listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(args.host), args.port));
  s.start_accept();
  s.run();
}

int main(int argc, char** argv) {
  auto args = wsedge::bench::parse_server_args(argc, argv, "wspp_echo");
  const std::string &cert = args.cert, &key = args.key;
  if (cert.empty()) {
    Plain s;
    serve(s, args);
    return 0;
  }
  Tls s;
  s.set_tls_init_handler([&](websocketpp::connection_hdl) {
    auto ctx = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
    ctx->set_options(boost::asio::ssl::context::default_workarounds |
                     boost::asio::ssl::context::no_tlsv1 | boost::asio::ssl::context::no_tlsv1_1);
    ctx->use_certificate_chain_file(cert);
    ctx->use_private_key_file(key, boost::asio::ssl::context::pem);
    return ctx;
  });
  serve(s, args);
}
