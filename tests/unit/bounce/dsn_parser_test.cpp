// Tests for bounce/dsn_parser.hpp: what each kind of report becomes, which
// reports are not failures, and the bounds that keep a hostile message
// cheap. Real formats are measured on the corpus by bench/dsn_accuracy.
#include "bounce/dsn_parser.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace ricochet::bounce;

namespace {

std::string report(const std::string& groups, const std::string& from = "MAILER-DAEMON@mx.example") {
    return "From: " + from +
           "\nTo: b-x@bnc.example\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n"
           "--B\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
           "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n" +
           groups + "\n--B--\n";
}

// A mail system's plain-text notice (no report part) to our bounce address.
dsn_report notice(const std::string& subject, const std::string& body) {
    return parse_dsn("From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example>\nTo: b-x@bnc.example\nSubject: " + subject +
                     "\n\n" + body);
}

std::string arf(const std::string& type) {
    return "From: fbl@isp.example\nTo: b-x@bnc.example\nSubject: report\nMIME-Version: 1.0\n"
           "Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\n\n"
           "--F\nContent-Type: text/plain\n\nA report.\n\n"
           "--F\nContent-Type: message/feedback-report\n\nFeedback-Type: " + type +
           "\nVersion: 1\nOriginal-Rcpt-To: <u@example.org>\n\n--F--\n";
}

}  // namespace

TEST(DsnParser, Rfc3464FailureWithStageFromTheDiagnostic) {
    auto r = parse_dsn(report("Final-Recipient: rfc822; u@example.org\nAction: failed\nStatus: 5.1.1\n"
                              "Remote-MTA: dns; mx.example.org\nDiagnostic-Code: smtp; 550 5.1.1 <u@example.org>: "
                              "User unknown (in reply to RCPT TO command)\n"));
    ASSERT_EQ(r.records.size(), 1u);
    auto& d = r.records[0];
    EXPECT_EQ(r.format, "rfc3464");
    EXPECT_EQ(d.type, "bounce");
    EXPECT_EQ(d.recipient, "u@example.org");
    EXPECT_EQ(d.status, "5.1.1");
    EXPECT_EQ(d.reply_code, 550);
    EXPECT_EQ(d.remote_mta, "mx.example.org");
    EXPECT_EQ(d.at, stage::rcpt);
    EXPECT_TRUE(r.from_mail_system);
}

TEST(DsnParser, TheReceivingServersOwnCodeWinsOverTheReportingMtasStatus) {
    auto status_of = [](const std::string& status, const std::string& diag) {
        auto r = parse_dsn(report("Final-Recipient: rfc822; u@example.org\nAction: failed\nStatus: " + status +
                                  "\nDiagnostic-Code: smtp; " + diag + "\n"));
        return r.records.empty() ? std::string("none") : r.records[0].status;
    };
    // Sendmail derives 5.1.1 from any 550 at RCPT; the server said 5.7.1.
    EXPECT_EQ(status_of("5.1.1", "550 5.7.1 IP address blacklisted by recipient"), "5.7.1");
    // A relay's summary quoting the reply it got: the innermost code.
    EXPECT_EQ(status_of("5.0.0", "5.1.0 - Unknown address error 550-'5.7.1 <u@example.org>... Access denied'"), "5.7.1");
    EXPECT_EQ(status_of("4.4.7", "554 4.4.7 Message expired: unable to deliver.<421 4.4.2 Connection timed out>"), "4.4.2");
    // Not a code: digits inside an address or a version; another class.
    EXPECT_EQ(status_of("5.1.1", "host 10.5.2.1 said: 550 user unknown (v2.4.1)"), "5.1.1");
    EXPECT_EQ(status_of("5.0.0", "550 5.1.1 user unknown; earlier: 451 4.3.0 try later"), "5.1.1");
}

TEST(DsnParser, EndOfDataStage) {
    auto r = parse_dsn(report("Final-Recipient: rfc822; u@example.org\nAction: failed\nStatus: 5.7.1\n"
                              "Diagnostic-Code: smtp; 550 5.7.1 rejected as spam (in reply to end of DATA command)\n"));
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.records[0].at, stage::end_of_data);
}

TEST(DsnParser, StageWordsFarApartAreNotAStage) {
    // "in reply to" after "MAIL FROM", or long before it, is not Postfix's
    // "(in reply to MAIL FROM command)".
    std::string diag = "smtp; 550 5.1.1 in reply to your request we looked everywhere and found nothing at all, "
                       "the mailbox is gone; see the MAIL FROM policy page; this notice was sent in reply to your mail";
    auto r = parse_dsn(report("Final-Recipient: rfc822; u@example.org\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: " +
                              diag + "\n"));
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.records[0].at, stage::rcpt) << "the default, not MAIL";
}

TEST(DsnParser, DelayedDeliveredAndRelayedAreNotFailures) {
    auto r = parse_dsn(report("Final-Recipient: rfc822; a@example.org\nAction: delayed\nStatus: 4.4.7\n\n"
                              "Final-Recipient: rfc822; b@example.org\nAction: delivered\nStatus: 2.0.0\n\n"
                              "Final-Recipient: rfc822; c@example.org\nAction: relayed\nStatus: 2.0.0\n\n"
                              "Final-Recipient: rfc822; d@example.org\nStatus: 2.0.0\n"));
    ASSERT_EQ(r.records.size(), 4u);
    EXPECT_EQ(r.records[0].type, "delayed");
    EXPECT_EQ(r.records[1].type, "delivered");
    EXPECT_EQ(r.records[2].type, "delivered");
    EXPECT_EQ(r.records[3].type, "delivered") << "no Action, a 2.x.x status: never a failure";
}

TEST(DsnParser, OnlyAbuseFraudAndOptOutAreComplaints) {
    for (auto t : {"abuse", "fraud", "opt-out"}) {
        auto r = parse_dsn(arf(t));
        ASSERT_EQ(r.records.size(), 1u) << t;
        EXPECT_EQ(r.records[0].type, "complaint") << t;
        EXPECT_EQ(r.records[0].recipient, "u@example.org") << t;
    }
    for (auto t : {"auth-failure", "not-spam", "virus", "other"}) {
        auto r = parse_dsn(arf(t));
        ASSERT_EQ(r.records.size(), 1u) << t;
        EXPECT_EQ(r.records[0].type, "feedback") << t << ": a report, not the recipient's complaint";
    }
}

TEST(DsnParser, AComplaintNamingTwoRecipientsGivesARecordForEach) {
    auto raw = arf("abuse");
    raw.insert(raw.find("Original-Rcpt-To"), "Original-Rcpt-To: <v@example.net>\n");
    auto r = parse_dsn(raw);
    ASSERT_EQ(r.records.size(), 2u);
    EXPECT_EQ(r.records[0].recipient, "v@example.net");
    EXPECT_EQ(r.records[1].recipient, "u@example.org");
    EXPECT_EQ(r.records[1].type, "complaint");
}

TEST(DsnParser, UnsubscribeByMailIsAnOptOut) {
    auto r = parse_dsn("From: Reader <reader@example.org>\nTo: b-x@bnc.example\nSubject: unsubscribe\n\n\n");
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.records[0].type, "complaint");
    EXPECT_EQ(r.records[0].feedback_type, "opt-out");
    EXPECT_EQ(r.records[0].recipient, "reader@example.org");
}

TEST(DsnParser, AutoSubmittedFromAPersonIsAnAutoreply) {
    auto r = parse_dsn("From: Reader <reader@example.org>\nTo: b-x@bnc.example\nSubject: Re: news\n"
                       "Auto-Submitted: auto-replied\n\nI read mail on Mondays.\n");
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.records[0].type, "autoreply");
    EXPECT_FALSE(r.from_mail_system);
}

TEST(DsnParser, AutoSubmittedFromAMailSystemIsStillABounce) {
    // Exim marks its bounces auto-replied.
    auto r = parse_dsn("From: Mail Delivery System <Mailer-Daemon@mx.example>\nTo: b-x@bnc.example\n"
                       "Subject: Mail delivery failed\nAuto-Submitted: auto-replied\nX-Failed-Recipients: u@example.org\n\n"
                       "The following address(es) failed:\n\n  u@example.org\n    SMTP error from remote mail server "
                       "after RCPT TO:<u@example.org>:\n    550 5.1.1 User unknown\n");
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.format, "text");
    EXPECT_EQ(r.records[0].type, "bounce");
    EXPECT_EQ(r.records[0].recipient, "u@example.org");
    EXPECT_EQ(r.records[0].reply_code, 550);
    EXPECT_EQ(r.records[0].status, "5.1.1");
    EXPECT_TRUE(r.from_mail_system);
}

TEST(DsnParser, FreeTextWarningIsADelay) {
    auto r = notice("Warning: message still undelivered after 4 hours",
                    "**********************************************\n"
                    "**      THIS IS A WARNING MESSAGE ONLY      **\n"
                    "**  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n\n"
                    "The original message was received and could not be delivered to u@example.org for 4 hours.\n"
                    "451 4.4.1 reply: read error from mx.example.org\n");
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.records[0].type, "delayed");
}

TEST(DsnParser, ALocalisedDelaySubjectIsADelay) {
    // "Zustellung verzögert" as an RFC 2047 encoded-word, and a French one in UTF-8.
    for (std::string subject : {"=?UTF-8?Q?Zustellung_verz=C3=B6gert?=", "Remise retard\xc3\xa9" "e"}) {
        auto r = notice(subject, "u@example.org\n451 4.4.1 mx.example.org: connection timed out\n");
        ASSERT_EQ(r.records.size(), 1u) << subject;
        EXPECT_EQ(r.records[0].type, "delayed") << subject;
    }
    auto failed = notice("Unzustellbar", "u@example.org\n550 5.1.1 unknown\n");
    ASSERT_EQ(failed.records.size(), 1u);
    EXPECT_EQ(failed.records[0].type, "bounce");
}

TEST(DsnParser, FreeTextWithoutACodeTakesTheWordsAroundTheAddress) {
    // No reply code anywhere: the reason is next to the address, after a
    // long preamble that alone would fill the diagnostic.
    std::string preamble(500, ' ');
    for (std::size_t i = 0; i < preamble.size(); i += 10) preamble.replace(i, 9, "blah blah");
    auto r = notice("failure notice",
                    "Hi. This is the qmail-send program. " + preamble +
                    "\n\n<u@example.org>:\nvdelivermail: account is locked email bounced\n");
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_NE(r.records[0].diagnostic.find("account is locked"), std::string::npos) << r.records[0].diagnostic;
    // OpenSMTPD's delay notice is a delay, not a failure.
    auto d = notice("Delivery status notification",
                    "A message is delayed for more than 10 minutes for the following\nlist of recipients:\n\n"
                    "u@example.org: Network error on destination MXs\n\n"
                    "Please note that this is only a temporary failure report.\n"
                    "You DO NOT NEED to re-send the message to these recipients.\n");
    ASSERT_EQ(d.records.size(), 1u);
    EXPECT_EQ(d.records[0].type, "delayed");
}

TEST(DsnParser, AReportWhoseBoundaryNeverAppearsIsStillRead) {
    // The header names one boundary, the body uses another (a rewriting
    // gateway): no MIME part is found, but the report fields are there.
    auto r = parse_dsn("From: MAILER-DAEMON@mx.example\nTo: b-x@bnc.example\nSubject: Undelivered Mail\nMIME-Version: 1.0\n"
                       "Content-Type: multipart/report; report-type=delivery-status; boundary=\"DECLARED\"\n\n"
                       "--USED\nContent-Type: text/plain\n\nThe mail system\n\n"
                       "--USED\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
                       "Final-Recipient: rfc822; <u@example.org>\nAction: failed\nStatus: 5.1.1\n"
                       "Diagnostic-Code: smtp; 550 5.1.1 no such user\n\n--USED--\n");
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.records[0].recipient, "u@example.org");
    EXPECT_EQ(r.records[0].status, "5.1.1");
    EXPECT_EQ(r.records[0].type, "bounce");
}

TEST(DsnParser, TheOriginalsAuthorQuotedBackIsNotARecipient) {
    auto r = parse_dsn("From: post_master@gw.example\nTo: b-x@bnc.example\nSubject: Re: Test\n\n"
                       "Error: Invalid user address\n\n550 - Requested action not taken: no such user here\n\n"
                       "Message details:\n  Subject: Test\n  MAIL FROM: b-x@bnc.example\n"
                       "  RCPT TO: 5550100@gw.example\n  From: author@shop.example\n");
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.records[0].recipient, "5550100@gw.example");
}

TEST(DsnParser, EachRecordWithoutADiagnosticGetsOnlyItsOwnPartOfTheNotice) {
    // No Diagnostic-Code: the notice text is read, from the recipient's
    // address up to the next reported address, not beyond.
    auto raw = std::string("From: MAILER-DAEMON@mx.example\nTo: b-x@bnc.example\nSubject: Delivery failure\nMIME-Version: 1.0\n"
                           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n"
                           "--B\nContent-Type: text/plain\n\n"
                           "u1@example.org: 550 5.1.1 <u1@example.org>: Recipient address rejected: User unknown\n"
                           "u2@example.org: 552 5.2.2 <u2@example.org>: Recipient address rejected: Mailbox full\n\n"
                           "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
                           "Final-Recipient: rfc822; u1@example.org\nAction: failed\nStatus: 5.0.0\n\n"
                           "Final-Recipient: rfc822; u2@example.org\nAction: failed\nStatus: 5.0.0\n\n--B--\n");
    auto r = parse_dsn(raw);
    ASSERT_EQ(r.records.size(), 2u);
    EXPECT_EQ(r.records[0].status, "5.1.1");
    EXPECT_EQ(r.records[0].diagnostic.find("Mailbox full"), std::string::npos) << r.records[0].diagnostic;
    EXPECT_EQ(r.records[1].status, "5.2.2");
}

TEST(DsnParser, ASendmailTranscriptGivesEachAddressItsOwnReply) {
    // Old Sendmail: no DSN, one transcript for several addresses. Each
    // address takes the remote reply of its own "While talking to" block
    // (and the command it answered), or its own "NNN <addr>... " line when
    // the remote said nothing about it.
    auto r = notice("Returned mail: User unknown",
                    "   ----- Transcript of session follows -----\n"
                    "While talking to a.example:\n>>> DATA\n<<< 550 You cannot send mail to yourself.\n"
                    "554 <u1@a.example>... Remote protocol error: Connection reset by peer\n"
                    "554 <u2@b.example>... 550 Host unknown (Authoritative answer from name server)\n"
                    "While talking to c.example:\n>>> RCPT To:<u3@c.example>\n<<< 550 5.1.1 No such user here.\n"
                    "550 <u3@c.example>... User unknown\n\n"
                    "   ----- Unsent message follows -----\nFrom: b-x@bnc.example\nTo: u1@a.example\n\nhi\n");
    ASSERT_EQ(r.records.size(), 3u);
    EXPECT_EQ(r.records[0].recipient, "u1@a.example");
    EXPECT_EQ(r.records[0].diagnostic, "550 You cannot send mail to yourself.");
    EXPECT_EQ(r.records[0].at, stage::end_of_data);
    EXPECT_TRUE(r.records[0].stage_known);
    EXPECT_EQ(r.records[1].recipient, "u2@b.example");
    EXPECT_EQ(r.records[1].diagnostic, "550 Host unknown (Authoritative answer from name server)");
    EXPECT_EQ(r.records[1].reply_code, 550);
    EXPECT_FALSE(r.records[1].stage_known);
    EXPECT_EQ(r.records[2].recipient, "u3@c.example");
    EXPECT_EQ(r.records[2].status, "5.1.1");
    EXPECT_EQ(r.records[2].at, stage::rcpt);
}

TEST(DsnParser, AModernSendmailTranscriptKeepsEachReplyWithItsAddress) {
    // Sendmail 8.10+: "... while talking to HOST.:" blocks, "NNN D.D.D
    // <addr>... " lines, multi-line replies, pipelined replies, and a
    // command that got no reply at all.
    auto r = notice("Returned mail: see transcript for details",
                    "   ----- Transcript of session follows -----\n"
                    "... while talking to a.example.:\n>>> RCPT To:<u1@a.example>\n"
                    "<<< 550-5.1.1 The account does not exist.\n<<< 550 5.1.1 See the help page.\n"
                    "550 5.1.1 <u1@a.example>... User unknown\n"
                    ">>> RCPT To:<u2@a.example>\n<<< 250 2.1.5 ok\n>>> RCPT To:<u3@a.example>\n"
                    "<<< 452 4.2.2 Mailbox full\n>>> DATA\n"
                    "u2@a.example... Deferred: Connection reset by a.example\n"
                    "452 4.2.2 <u3@a.example>... Mailbox full\n\n"
                    "   ----- Unsent message follows -----\nFrom: b-x@bnc.example\n\nhi\n");
    ASSERT_EQ(r.records.size(), 3u);
    EXPECT_EQ(r.records[0].recipient, "u1@a.example");
    EXPECT_EQ(r.records[0].diagnostic, "550 5.1.1 The account does not exist. See the help page.");
    EXPECT_EQ(r.records[0].status, "5.1.1");
    EXPECT_EQ(r.records[0].at, stage::rcpt);
    // u2's RCPT was taken; its failure is Sendmail's own (no reply after DATA).
    EXPECT_EQ(r.records[1].recipient, "u2@a.example");
    EXPECT_EQ(r.records[1].diagnostic, "Deferred: Connection reset by a.example");
    EXPECT_EQ(r.records[1].reply_code, 0);
    EXPECT_FALSE(r.records[1].stage_known);
    // u3's own reply, not u1's: the reply before an address line belongs to it only.
    EXPECT_EQ(r.records[2].recipient, "u3@a.example");
    EXPECT_EQ(r.records[2].diagnostic, "452 4.2.2 Mailbox full");
    EXPECT_EQ(r.records[2].reply_code, 452);
}

TEST(DsnParser, ATranscriptRefusedAtEhloNamesThatStep) {
    // The report's own text shows the refused EHLO: every record is at ehlo.
    auto raw = report("Final-Recipient: rfc822; u@example.org\nAction: failed\nStatus: 5.0.0\n"
                      "Diagnostic-Code: smtp; 554 5.0.0 Service unavailable\n");
    raw.replace(raw.find("Your message could not be delivered."), 36,
                "... while talking to mx.example.org.:\n>>> EHLO mta.example\n<<< 554 5.7.1 go away\n");
    auto r = parse_dsn(raw);
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_TRUE(r.records[0].stage_known);
    EXPECT_EQ(r.records[0].at, stage::ehlo);
}

TEST(DsnParser, QmailsSentencesNameTheSmtpStep) {
    // qmail-remote never says "in reply to"; its sentences name the step.
    auto qmail = [](const std::string& sentence) {
        return notice("failure notice",
                      "Hi. This is the qmail-send program at mx.example.\n"
                      "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
                      "<u@example.net>:\n" + sentence + "\nRemote host said: 550 5.0.0 no\n");
    };
    struct { const char* sentence; stage at; } cases[] = {
        {"Connected to 192.0.2.1 but greeting failed.", stage::greeting},
        {"Connected to 192.0.2.1 but my name was rejected.", stage::ehlo},
        {"Connected to 192.0.2.1 but sender was rejected.", stage::mail},
        {"192.0.2.1 does not like recipient.", stage::rcpt},
        {"192.0.2.1 failed on DATA command.", stage::data},
        {"192.0.2.1 failed after I sent the message.", stage::end_of_data}};
    for (auto& c : cases) {
        auto r = qmail(c.sentence);
        ASSERT_EQ(r.records.size(), 1u) << c.sentence;
        EXPECT_TRUE(r.records[0].stage_known) << c.sentence;
        EXPECT_EQ(r.records[0].at, c.at) << c.sentence;
    }
}

TEST(DsnParser, AmazonSesNotificationsByMailAreRead) {
    // An SNS e-mail subscription: the JSON notification, then SNS's footer.
    auto mail = [](const std::string& json) {
        return parse_dsn("From: SES <no-reply@sns.amazonaws.com>\nTo: b-x@bnc.example\nSubject: AWS Notification Message\n"
                         "Content-Type: text/plain; charset=UTF-8\n\n" + json +
                         "\n\n--\nIf you wish to stop receiving notifications from this topic, please click below.\n");
    };
    auto b = mail(R"({"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",)"
                  R"("bouncedRecipients":[{"emailAddress":"u1@example.org","action":"failed","status":"5.1.1",)"
                  R"("diagnosticCode":"smtp; 550 5.1.1 user unknown"},{"emailAddress":"u2@example.net"}],)"
                  R"("reportingMTA":"dns; a1.smtp-out.amazonses.com"},"mail":{"source":"b-x@bnc.example"}})");
    EXPECT_EQ(b.format, "ses");
    ASSERT_EQ(b.records.size(), 2u);
    EXPECT_EQ(b.records[0].type, "bounce");
    EXPECT_EQ(b.records[0].recipient, "u1@example.org");
    EXPECT_EQ(b.records[0].status, "5.1.1");
    EXPECT_EQ(b.records[0].reply_code, 550);
    EXPECT_EQ(b.records[0].diagnostic, "550 5.1.1 user unknown");
    EXPECT_EQ(b.records[0].reporting_mta, "a1.smtp-out.amazonses.com");
    EXPECT_EQ(b.records[1].status, "5.0.0");  // no status of its own: a Permanent bounce
    // No diagnostic: the sub-type says why, in words the classifier reads.
    auto full = mail(R"({"notificationType":"Bounce","bounce":{"bounceType":"Transient","bounceSubType":"MailboxFull",)"
                     R"("bouncedRecipients":[{"emailAddress":"u@example.org"}]}})");
    ASSERT_EQ(full.records.size(), 1u);
    EXPECT_EQ(full.records[0].diagnostic, "mailbox full");
    EXPECT_EQ(full.records[0].status, "4.0.0");  // Transient: not final for the address
    // A complaint (feedback type abuse when SES gives none), and an event-publishing delivery.
    auto c = mail(R"({"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"u@example.org"}]}})");
    ASSERT_EQ(c.records.size(), 1u);
    EXPECT_EQ(c.records[0].type, "complaint");
    EXPECT_EQ(c.records[0].feedback_type, "abuse");
    auto d = mail(R"({"eventType":"Delivery","delivery":{"recipients":["u@example.org"],"smtpResponse":"250 2.6.0 ok"}})");
    ASSERT_EQ(d.records.size(), 1u);
    EXPECT_EQ(d.records[0].type, "delivered");
    // Cut short, or an unknown type: not read as SES (the free-text reading
    // has its own rules for what counts).
    EXPECT_NE(mail(R"({"notificationType":"Bounce","bounce":{"bouncedRecipients":[{"emailAddress":"u@exa)").format, "ses");
    EXPECT_NE(mail(R"({"notificationType":"Received","receipt":{}})").format, "ses");
}

TEST(DsnParser, NullReturnPathCountsAsAMailSystem) {
    auto r = parse_dsn("Return-Path: <>\nFrom: gateway@example.org\nTo: b-x@bnc.example\nSubject: failure\n\n"
                       "Delivery to u@example.org failed: 550 5.1.1 no such user\n");
    EXPECT_TRUE(r.from_mail_system);
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.records[0].recipient, "u@example.org");
}

TEST(DsnParser, NotAMessageGivesNoRecords) {
    EXPECT_TRUE(parse_dsn("").records.empty());
    EXPECT_TRUE(parse_dsn("Subject: hi\n\nnothing useful here\n").records.empty());
}

// Hostile input: the listener takes mail from anyone, so the work and the
// output of one message are bounded.
TEST(DsnParser, ThousandsOfRecordsAreCappedAtOneHundred) {
    std::string groups;
    for (int i = 0; i < 5000; ++i)
        groups += "Final-Recipient: rfc822; u" + std::to_string(i) + "@example.org\nAction: failed\nStatus: 5.1.1\n\n";
    auto r = parse_dsn(report(groups));
    EXPECT_EQ(r.records.size(), 100u);
    EXPECT_EQ(r.records[0].recipient, "u0@example.org");
}

TEST(DsnParser, HugeFreeTextIsReadOnlyInPart) {
    std::string body;
    for (int i = 0; i < 40000; ++i) body += "in reply to RCPT TO u" + std::to_string(i) + "@example.org 550 5.1.1\n";
    auto r = notice("failure", body);
    EXPECT_LE(r.records.size(), 100u);
    EXPECT_FALSE(r.records.empty());
}

TEST(DsnParser, DeeplyNestedMultipartsAreNotWalked) {
    std::string open, close;
    for (int i = 0; i < 200; ++i) {
        open += "Content-Type: multipart/mixed; boundary=\"b" + std::to_string(i) + "\"\n\n--b" + std::to_string(i) + "\n";
        close = "--b" + std::to_string(i) + "--\n" + close;
    }
    auto r = parse_dsn("From: x@example.org\nTo: b-x@bnc.example\nMIME-Version: 1.0\n" + open +
                       "Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; deep@example.org\n"
                       "Action: failed\nStatus: 5.1.1\n\n" + close);
    for (auto& d : r.records) EXPECT_NE(d.recipient, "deep@example.org") << "a report 200 levels down is not read";
}

TEST(DsnParser, DsnReplyDerivesACodeFromTheStatusOrAction) {
    dsn_record d;
    d.type = "bounce";
    d.status = "5.1.1";
    EXPECT_EQ(dsn_reply(d).code, 550);
    d.status = "4.2.2";
    EXPECT_EQ(dsn_reply(d).code, 450);
    d.status.clear();
    d.type = "delayed";
    EXPECT_EQ(dsn_reply(d).code, 450);
}

TEST(DsnParser, AnSnsEnvelopeAroundASesComplaintIsAComplaint) {
    // An HTTP or SQS subscriber that mails the SNS envelope on: the SES
    // notification is a JSON string in "Message". A complaint, not a bounce.
    std::string inner = R"({\"notificationType\":\"Complaint\",\"complaint\":{\"complainedRecipients\":)"
                        R"([{\"emailAddress\":\"u@example.org\"}],\"complaintFeedbackType\":\"abuse\"}})";
    auto r = parse_dsn("From: forwarder@example.net\nTo: b-x@bnc.example\nSubject: SNS\nContent-Type: text/plain\n\n"
                       R"({"Type":"Notification","MessageId":"1","TopicArn":"arn:aws:sns:x","Message":")" + inner + "\"}\n");
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.records[0].type, "complaint");
    EXPECT_EQ(r.records[0].recipient, "u@example.org");
    EXPECT_EQ(r.records[0].feedback_type, "abuse");
    // A Message that is not JSON is not read as SES.
    auto bad = parse_dsn("From: forwarder@example.net\nTo: b-x@bnc.example\nSubject: SNS\nContent-Type: text/plain\n\n"
                         R"({"Type":"Notification","Message":"{\"notificationType\":\"Complaint\", broken"})" "\n");
    EXPECT_NE(bad.format, "arf");
}

TEST(DsnParser, PowerMtasBadMailboxCategoryConfirmsTheAddress) {
    auto rec = [](const std::string& category) {
        auto r = parse_dsn(report("Final-Recipient: rfc822; u@example.org\nAction: failed\nStatus: 5.0.0\n"
                                  "Diagnostic-Code: smtp; 554 delivery error: this user doesn't have an account\n" +
                                  (category.empty() ? "" : "X-PowerMTA-BounceCategory: " + category + "\n")));
        return r.records.empty() ? dsn_record{} : r.records[0];
    };
    EXPECT_TRUE(rec("bad-mailbox").address_confirmed);
    EXPECT_TRUE(dsn_reply(rec("bad-mailbox")).address_confirmed);
    EXPECT_FALSE(rec("policy-related").address_confirmed);
    EXPECT_FALSE(rec("").address_confirmed);
}

TEST(DsnParser, IsoTwoThousandTwentyTwoJpDiagnosticsAreDecoded) {
    // Domino in Japan writes the Diagnostic-Code in ISO-2022-JP (ESC $ B ... ESC ( B).
    auto r = parse_dsn(report("Final-Recipient: rfc822; u@example.jp\nAction: failed\nStatus: 5.0.0\n"
                              "Diagnostic-Code: X-Notes; \x1b$B%f!<%6!<\x1b(B u \x1b$B$O\x1b(B Domino "
                              "\x1b$B%G%#%l%/%H%j$K$O8+$D$+$j$^$;$s!#\x1b(B\n"));
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_NE(r.records[0].diagnostic.find("ディレクトリには見つかりません"), std::string::npos) << r.records[0].diagnostic;
}

TEST(DsnParser, StageMarkersAreFoundAcrossFoldedLinesAndInPostfixsRejectTexts) {
    auto text_report = [](const std::string& notice, const std::string& diag) {
        return parse_dsn("From: MAILER-DAEMON@mx.example\nTo: b-x@bnc.example\nSubject: Undelivered\nMIME-Version: 1.0\n"
                         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n"
                         "--B\nContent-Type: text/plain\n\n" + notice +
                         "\n--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
                         "Final-Recipient: rfc822; u@example.org\nAction: failed\nStatus: 5.0.0\n"
                         "Diagnostic-Code: smtp; " + diag + "\n\n--B--\n");
    };
    // Postfix folds "(in reply to RCPT\n    TO command)".
    auto folded = text_report("<u@example.org>: host mx.example.org said: 550 <u@example.org>: rejected. (in reply to RCPT\n"
                              "    TO command)\n", "550 <u@example.org>: rejected.");
    ASSERT_EQ(folded.records.size(), 1u);
    EXPECT_TRUE(folded.records[0].stage_known);
    EXPECT_EQ(folded.records[0].at, stage::rcpt);
    auto label = text_report("Technical details:\nSMTP:RCPT host 192.0.2.8: 553 5.3.0 <u@example.org>... No such user here\n",
                             "553 5.3.0 <u@example.org>... No such user here");
    EXPECT_TRUE(label.records[0].stage_known);
    EXPECT_EQ(label.records[0].at, stage::rcpt);
    auto postfix = text_report("failed.\n", "550 5.2.1 <u@example.org>: Recipient address rejected: User unknown");
    EXPECT_TRUE(postfix.records[0].stage_known);
    EXPECT_EQ(postfix.records[0].at, stage::rcpt);
    auto none = text_report("failed.\n", "550 5.0.0 <u@example.org>: User unknown");
    EXPECT_FALSE(none.records[0].stage_known);
}
