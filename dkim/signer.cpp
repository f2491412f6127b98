// signer — see signer.hpp.
#include "dkim/signer.hpp"

#include "base/text.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace ricochet::dkim {

struct key {
    EVP_PKEY* pkey = nullptr;
    bool ed25519 = false;
    ~key() { EVP_PKEY_free(pkey); }
};

namespace {

std::string base64(const unsigned char* data, std::size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');
    int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
    out.resize(static_cast<std::size_t>(len));
    return out;
}

std::string sha256(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<char*>(md), len);
}

// The signature of data's SHA-256 hash: RSASSA-PKCS1-v1_5 for RSA (RFC 6376
// 3.3.1), PureEdDSA over the hash for Ed25519 (RFC 8463 3).
std::string sign_data(const key& k, std::string_view data) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::string sig;
    std::size_t len = 0;
    bool ok;
    if (k.ed25519) {
        std::string h = sha256(data);
        ok = EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, k.pkey) == 1 &&
             EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(h.data()), h.size()) == 1;
        sig.resize(len);
        ok = ok && EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                                  reinterpret_cast<const unsigned char*>(h.data()), h.size()) == 1;
    } else {
        ok = EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, k.pkey) == 1 &&
             EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
        sig.resize(len);
        ok = ok && EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                                  reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
    }
    EVP_MD_CTX_free(ctx);
    if (!ok) return "";
    sig.resize(len);
    return base64(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

// Folds a long tag value: WSP is ignored inside b= (3.5), so the lines may
// break anywhere there.
std::string fold_b64(const std::string& v) {
    std::string out;
    for (std::size_t i = 0; i < v.size(); i += 72) {
        if (i) out += "\r\n\t ";
        out.append(v, i, 72);
    }
    return out;
}


}  // namespace

std::shared_ptr<const key> load_key(const std::filesystem::path& file, std::string& error) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        error = file.string() + ": cannot be read";
        return nullptr;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string pem = ss.str();
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    // No passphrase: an encrypted key fails here rather than prompting on a terminal.
    auto no_passphrase = [](char*, int, int, void*) { return 0; };
    EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, no_passphrase, nullptr);
    BIO_free(bio);
    if (!pkey) {
        error = file.string() + ": not a PEM private key (or an encrypted one: DKIM keys are read without a passphrase)";
        return nullptr;
    }
    auto k = std::make_shared<key>();
    k->pkey = pkey;
    int type = EVP_PKEY_get_base_id(pkey);
    if (type == EVP_PKEY_ED25519) {
        k->ed25519 = true;
    } else if (type == EVP_PKEY_RSA) {
        // RFC 8301 3.2: signers must use at least 1024 bits and should use
        // 2048; the large providers ignore shorter keys.
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits < 2048) {
            error = file.string() + ": RSA key of " + std::to_string(bits) + " bits; at least 2048 are needed";
            return nullptr;
        }
    } else {
        const char* name = EVP_PKEY_get0_type_name(pkey);
        error = file.string() + ": an " + std::string(name ? name : "unknown") +
                " key; DKIM signs with RSA (2048 bits or more) or Ed25519";
        return nullptr;
    }
    return k;
}

std::string_view algorithm(const key& k) { return k.ed25519 ? "ed25519-sha256" : "rsa-sha256"; }

std::string dns_record(const key& k) {
    std::string p;
    if (k.ed25519) {
        unsigned char raw[32];
        std::size_t len = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(k.pkey, raw, &len) == 1) p = base64(raw, len);
        return "v=DKIM1; k=ed25519; p=" + p;
    }
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(k.pkey, &der);
    if (len > 0) p = base64(der, static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return "v=DKIM1; k=rsa; p=" + p;
}

bool signer::load(const std::vector<entry_config>& entries, std::string& error) {
    entries_.clear();
    for (std::size_t i = 0; i < entries.size(); ++i) {
        auto& e = entries[i];
        std::string why;
        auto k = load_key(e.key_file, why);
        if (!k) {
            error = "dkim (domain \"" + e.domain + "\", selector \"" + e.selector + "\"): key_file " + why;
            entries_.clear();
            return false;
        }
        entries_.push_back({e, std::move(k)});
        entries_.back().cfg.domain = base::lower(e.domain);
    }
    return true;
}

std::vector<signer::published> signer::records() const {
    std::vector<published> out;
    for (auto& e : entries_) out.push_back({e.cfg.domain, e.cfg.selector, dns_record(*e.k)});
    return out;
}

signer::prepared signer::prepare(std::string_view content) const {
    prepared p;
    if (entries_.empty()) return p;
    auto parts = split_message(content);
    p.headers = std::move(parts.headers);
    p.domain = from_domain(p.headers);
    if (p.domain.empty()) return p;
    for (std::size_t i = 0; i < entries_.size(); ++i)
        if (entries_[i].cfg.domain == p.domain) p.entries.push_back(i);
    if (p.entries.empty())
        for (std::size_t i = 0; i < entries_.size(); ++i)
            if (entries_[i].cfg.domain == "*") p.entries.push_back(i);
    for (auto i : p.entries) {
        auto& out = entries_[i].cfg.canon.body == canon::relaxed ? p.body_hash_relaxed : p.body_hash_simple;
        if (!out.empty()) continue;
        auto h = sha256(canon_body(parts.body, entries_[i].cfg.canon.body));
        out = base64(reinterpret_cast<const unsigned char*>(h.data()), h.size());
    }
    return p;
}

std::string signer::sign(const prepared& p, std::string_view added, std::int64_t time) const {
    if (p.entries.empty()) return "";
    // The fields a verifier will see: ours on top, then the message's.
    auto fields = split_headers(added);
    fields.insert(fields.end(), p.headers.begin(), p.headers.end());
    std::string out;
    for (auto i : p.entries) {
        auto& e = entries_[i];
        auto h = signed_names(e.cfg.headers, fields);
        std::string field = "DKIM-Signature: v=1; a=" + std::string(algorithm(*e.k)) + "; c=" + to_string(e.cfg.canon) +
                            "; d=" + p.domain + "; s=" + e.cfg.selector + ";\r\n\tt=" + std::to_string(time) + "; h=";
        std::size_t line = 8;
        for (std::size_t k = 0; k < h.size(); ++k) {
            if (k) {
                field += ':';
                if (line + h[k].size() > 70) {
                    field += "\r\n\t ";
                    line = 1;
                }
            }
            field += base::lower(h[k]);
            line += h[k].size() + 1;
        }
        field += ";\r\n\tbh=" +
                 (e.cfg.canon.body == canon::relaxed ? p.body_hash_relaxed : p.body_hash_simple) + ";\r\n\tb=";
        std::string data;
        for (auto* f : select_fields(h, fields)) data += canon_header(f->raw, e.cfg.canon.header);
        // The signature's own field, b= empty and without its CRLF (3.7).
        auto self = canon_header(field, e.cfg.canon.header);
        self.resize(self.size() - 2);
        data += self;
        auto b = sign_data(*e.k, data);
        if (b.empty()) continue;  // OpenSSL failed: the copy goes unsigned rather than with a bad signature
        out += field + fold_b64(b) + "\r\n";
    }
    return out;
}

}  // namespace ricochet::dkim
