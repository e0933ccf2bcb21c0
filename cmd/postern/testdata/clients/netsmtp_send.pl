# Sends one message with Perl's Net::SMTP (TLS by IO::Socket::SSL, AUTH by
# Authen::SASL), as a script would. The job (JSON, $ARGV[0]) is written by
# cmd/postern/clients_e2e_test.go; the message is the file "raw".
use strict;
use warnings;
use JSON::PP;
use Net::SMTP;
use IO::Socket::SSL;
use Authen::SASL;

open(my $jf, '<:raw', $ARGV[0]) or die "job: $!";
my $job = decode_json(do { local $/; <$jf> });
if ($job->{version}) {
    print "Net::SMTP $Net::SMTP::VERSION, IO::Socket::SSL $IO::Socket::SSL::VERSION, Authen::SASL $Authen::SASL::VERSION\n";
    exit 0;
}
my %ssl = (SSL_ca_file => $job->{ca}, SSL_verify_mode => SSL_VERIFY_PEER);
my $smtp = Net::SMTP->new($job->{host}, Port => $job->{port}, Hello => 'client.test', Timeout => 60,
    ($job->{mode} eq 'tls' ? (SSL => 1, %ssl) : ()))
    or die "connect: $@ $IO::Socket::SSL::SSL_ERROR\n";
if ($job->{mode} eq 'starttls') {
    $smtp->starttls(%ssl) or die "STARTTLS failed: $IO::Socket::SSL::SSL_ERROR\n";
}
my $sasl = Authen::SASL->new(mechanism => $job->{mech},
    callback => { user => $job->{user}, pass => $job->{pass} });
$smtp->auth($sasl) or die "Net::SMTP auth failed: " . $smtp->code . " " . $smtp->message;
$smtp->mail($job->{from}) or die "MAIL: " . $smtp->message;
$smtp->to($job->{to}) or die "RCPT: " . $smtp->message;
$smtp->data() or die "DATA: " . $smtp->message;
open(my $raw, '<:raw', $job->{raw}) or die "raw: $!";
while (read($raw, my $buf, 65536)) {
    $smtp->datasend($buf) or die "datasend: " . $smtp->message;
}
$smtp->dataend() or die "end of DATA: " . $smtp->code . " " . $smtp->message;
$smtp->quit;
