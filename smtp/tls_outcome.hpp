// tls_outcome — what a receiving domain's policy asks of an outbound
// connection's TLS, and what the connection found: plain values shared by
// the SMTP client (smtp_client.hpp) and delivery (delivery/transport.hpp),
// which hands the outcome to TLS-RPT (tls/tls_report.hpp).
#pragma once
#include <string>
#include <vector>

namespace ricochet::smtp {

// What a receiver's policy asks of one connection's TLS (MTA-STS, RFC 8461):
// verify: STARTTLS and a certificate that chains to a trusted root and names
// the MX host, else no session (enforce); check: the same checks, only
// reported (testing). Neither: delivery.tls and tls_verify alone decide.
//
// dane: the MX host has DNSSEC-validated TLSA records (RFC 7672): STARTTLS
// is required, and the certificate must match one of tlsa (DANE-EE(3):
// the server's own certificate or key, no name check; DANE-TA(2): a CA of
// its chain, with the MX host name checked). With dane and no usable
// record (only PKIX usages 0 and 1), TLS is required but not authenticated
// (RFC 7672 2.2).
struct tlsa_rr {
    unsigned char usage = 0, selector = 0, mtype = 0;
    std::string data;  // the certificate association data, raw bytes
};

struct tls_demand {
    bool verify = false;
    bool check = false;
    bool dane = false;
    std::vector<tlsa_rr> tlsa;
};

// What was found about TLS on a connection that got as far as deciding on
// STARTTLS (RFC 8460 result types; see tls/tls_report.hpp).
struct tls_outcome {
    bool evaluated = false;  // reached the STARTTLS step (connect and greeting went well)
    bool ok = false;         // TLS with a certificate that passed the checks asked for
    std::string result_type;  // when not ok: starttls-not-supported, certificate-*, validation-failure
    std::string detail;
};

}  // namespace ricochet::smtp
