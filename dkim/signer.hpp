// signer — DKIM signatures (RFC 6376) with RSA-SHA256 or Ed25519-SHA256
// (RFC 8463), for the [[dkim]] entries of the configuration.
//
// Written here on OpenSSL's primitives rather than with libopendkim: a
// campaign message goes out once per recipient with that recipient's own
// List-Unsubscribe, so each copy needs its own header signature, but the
// body is the same. prepare() hashes the body once per message (per body
// canonicalization in use); sign() then hashes a few header fields and
// makes one signature per entry. libopendkim hashes the body again for
// every signing handle, i.e. per recipient. What is ours is the text part
// (dkim/canon.hpp, tested against the RFC's examples); every signature is
// checked by an independent verifier (dkimpy) in tests/integration/test_dkim.py.
//
// Keys are PEM private keys: RSA of at least 2048 bits, or Ed25519. Thread-
// safe after load(): delivery signs on a small pool of its own.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/canon.hpp"

namespace ricochet::dkim {

struct key;  // an OpenSSL private key

struct entry_config {
    std::string domain;  // "*": any From domain without entries of its own
    std::string selector;
    std::filesystem::path key_file;
    std::vector<std::string> headers;
    canonicalization canon;
};

// Loads a PEM private key and checks it: readable, RSA >= 2048 bits or
// Ed25519. Null with error ("FILE: why") otherwise.
std::shared_ptr<const key> load_key(const std::filesystem::path& file, std::string& error);
// "rsa-sha256" or "ed25519-sha256".
std::string_view algorithm(const key& k);
// The DNS TXT record that publishes the key's public half: "v=DKIM1; k=rsa; p=...".
std::string dns_record(const key& k);

class signer {
public:
    // Loads every entry's key; false with error naming the entry and key.
    bool load(const std::vector<entry_config>& entries, std::string& error);
    bool empty() const { return entries_.empty(); }
    // What to publish in DNS for each entry: SELECTOR._domainkey.DOMAIN TXT record.
    struct published {
        std::string domain, selector, record;
    };
    std::vector<published> records() const;

    // What is the same for every recipient of a message: the header fields,
    // the From domain, the entries that sign it and the body hash of each.
    struct prepared {
        std::vector<header_field> headers;  // views into the content
        std::string domain;                 // d=, the From domain
        std::vector<std::size_t> entries;   // indexes into the signer's entries
        std::string body_hash_relaxed, body_hash_simple;  // base64, those in use
    };
    // content must outlive the result. entries is empty when nothing signs
    // this message (no From, or a From domain without entries).
    prepared prepare(std::string_view content) const;
    // The DKIM-Signature fields (each ending in CRLF, to go on top of the
    // message) over `added` (whole header fields put on top for this
    // recipient) and the message's own fields. time: the t= tag (seconds).
    std::string sign(const prepared& p, std::string_view added, std::int64_t time) const;

private:
    struct entry {
        entry_config cfg;
        std::shared_ptr<const key> k;
    };
    std::vector<entry> entries_;
};

}  // namespace ricochet::dkim
