// wspp_echo: the websocketpp baseline. Echo server on the asio (no TLS) config, one thread,
// logging off.   wspp_echo --listen HOST:PORT
#include <cstdio>
#include <string>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

using Server = websocketpp::server<websocketpp::config::asio>;

int main(int argc, char** argv) {
  if (argc != 3 || std::string(argv[1]) != "--listen") {
    std::fprintf(stderr, "usage: wspp_echo --listen HOST:PORT\n");
    return 2;
  }
  std::string hp = argv[2];
  auto colon = hp.rfind(':');
  Server s;
  s.clear_access_channels(websocketpp::log::alevel::all);
  s.clear_error_channels(websocketpp::log::elevel::all);
  s.init_asio();
  s.set_reuse_addr(true);
  s.set_listen_backlog(4096);
  s.set_max_message_size(64 << 20);
  s.set_tcp_post_init_handler([&s](websocketpp::connection_hdl h) {
    s.get_con_from_hdl(h)->get_socket().set_option(boost::asio::ip::tcp::no_delay(true));
  });
  s.set_message_handler([&s](websocketpp::connection_hdl h, Server::message_ptr msg) {
    websocketpp::lib::error_code ec;
    s.send(h, msg->get_payload(), msg->get_opcode(), ec);
  });
  s.listen(
      boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(hp.substr(0, colon)),
                                     static_cast<unsigned short>(std::stoi(hp.substr(colon + 1)))));
  s.start_accept();
  s.run();
}
