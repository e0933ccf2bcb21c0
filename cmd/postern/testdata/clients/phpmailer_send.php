<?php
// Sends one message with PHPMailer (Debian's libphp-phpmailer), as a PHP
// application would. The job (JSON, $argv[1]) is written by
// cmd/postern/clients_e2e_test.go.
require '/usr/share/php/libphp-phpmailer/autoload.php';

use PHPMailer\PHPMailer\PHPMailer;
use PHPMailer\PHPMailer\Exception;

$job = json_decode(file_get_contents($argv[1]), true);
if (!empty($job['version'])) {
    echo 'PHPMailer ' . PHPMailer::VERSION . ', PHP ' . PHP_VERSION . "\n";
    exit(0);
}
$m = new PHPMailer(true);
try {
    $m->isSMTP();
    $m->Host = $job['host'];
    $m->Port = $job['port'];
    $m->Timeout = 60;
    $m->SMTPSecure = $job['mode'] === 'tls' ? PHPMailer::ENCRYPTION_SMTPS : PHPMailer::ENCRYPTION_STARTTLS;
    $m->SMTPOptions = ['ssl' => ['cafile' => $job['ca'], 'verify_peer' => true, 'verify_peer_name' => true]];
    $m->SMTPAuth = true;
    $m->AuthType = $job['mech'];
    $m->Username = $job['user'];
    $m->Password = $job['pass'];
    $m->CharSet = PHPMailer::CHARSET_UTF8;
    $m->setFrom($job['from']);
    $m->addAddress($job['to']);
    $m->Subject = $job['subject'];
    $m->Body = $job['body'];
    if (!empty($job['attachment'])) {
        $m->addAttachment($job['attachment'], 'attachment.bin');
    }
    $m->send();
} catch (Exception $e) {
    fwrite(STDERR, 'PHPMailer: ' . $m->ErrorInfo . "\n");
    exit(1);
}
