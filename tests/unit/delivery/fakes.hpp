// fakes — a DNS built from a table and SMTP servers that answer from a
// script, for delivery's unit tests (KumoMTA's TestResolver, in spirit).
// Both run on the caller's strand and complete at once.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "delivery/transport.hpp"
#include "dns/lookup.hpp"

namespace ricochet::delivery::fake {

inline bounce::smtp_reply reply(int code, std::string enhanced, std::string text, bounce::stage at) {
    bounce::smtp_reply r;
    r.code = code;
    r.enhanced = std::move(enhanced);
    r.lines = {std::move(text)};
    r.at = at;
    return r;
}

class dns final : public ricochet::dns::lookup {
public:
    std::map<std::string, ricochet::dns::mx_result> mx_answers;        // by domain
    std::map<std::string, ricochet::dns::address_result> addr_answers;  // by host

    // domain -> MX hosts in order, each host -> one address.
    void zone(const std::string& domain, std::vector<std::pair<std::string, std::string>> mx_and_ip) {
        ricochet::dns::mx_result r;
        r.status = ricochet::dns::dns_status::ok;
        int pref = 10;
        for (auto& [host, ip] : mx_and_ip) {
            r.hosts.push_back({host, static_cast<std::uint16_t>(pref)});
            pref += 10;
            addr_answers[host] = {ricochet::dns::dns_status::ok, {ip}, ""};
        }
        mx_answers[domain] = r;
    }
    boost::asio::awaitable<ricochet::dns::mx_result> mx(const std::string& domain) override {
        auto it = mx_answers.find(domain);
        if (it != mx_answers.end()) co_return it->second;
        co_return ricochet::dns::mx_result{ricochet::dns::dns_status::nxdomain, {}, false, domain + ": NXDOMAIN"};
    }
    boost::asio::awaitable<ricochet::dns::address_result> addresses(const std::string& host) override {
        auto it = addr_answers.find(host);
        if (it != addr_answers.end()) co_return it->second;
        co_return ricochet::dns::address_result{ricochet::dns::dns_status::nxdomain, {}, host + ": NXDOMAIN"};
    }
};

// What one server (by IP) does. refuse: the connection fails with this
// reply (no code: connection refused). answer: the transaction's outcome for
// a recipient, given the connection's number (0, 1, ...) and how many
// transactions it carried before.
struct server {
    std::optional<bounce::smtp_reply> refuse;
    std::function<transaction(const std::string& rcpt, int conn, unsigned before)> answer;
};

class transport final : public delivery::transport {
public:
    std::map<std::string, server> servers;   // by IP
    std::vector<std::string> opened;          // every open attempt, by IP
    std::vector<std::string> sent;            // "IP rcpt" per transaction

    boost::asio::awaitable<open_result> open(const hop& h, bool, const std::string&) override {
        auto ip = h.ep.address().to_string();
        opened.push_back(ip);
        open_result r;
        auto it = servers.find(ip);
        if (it == servers.end() || it->second.refuse) {
            r.failure = it == servers.end() ? reply(0, "", "connect to " + ip + ": Connection refused",
                                                    bounce::stage::connect)
                                            : *it->second.refuse;
            co_return r;
        }
        r.conn = std::make_unique<conn>(*this, it->second, h.host, ip, conns_[ip]++);
        co_return r;
    }

private:
    class conn final : public connection {
    public:
        conn(transport& t, server& s, std::string mx, std::string ip, int n)
            : t_(t), s_(s), mx_(std::move(mx)), ip_(std::move(ip)), n_(n) {}
        boost::asio::awaitable<transaction> send(const std::string&, const std::string& rcpt, const std::string&,
                                                 const std::string&, bool, bool) override {
            t_.sent.push_back(ip_ + " " + rcpt);
            auto t = s_.answer(rcpt, n_, count_++);
            if (t.connection_lost || t.reply.code == 421) usable_ = false;  // 421: the server closes (RFC 5321 3.8)
            co_return t;
        }
        boost::asio::awaitable<void> quit() override { co_return; }
        bool usable() const override { return usable_; }
        unsigned transactions() const override { return count_; }
        const std::string& mx() const override { return mx_; }
        const std::string& ip() const override { return ip_; }

    private:
        transport& t_;
        server& s_;
        std::string mx_, ip_;
        int n_;
        unsigned count_ = 0;
        bool usable_ = true;
    };
    std::map<std::string, int> conns_;
};

inline transaction ok() { return {reply(250, "2.0.0", "Ok: queued", bounce::stage::end_of_data), false, false}; }

}  // namespace ricochet::delivery::fake
