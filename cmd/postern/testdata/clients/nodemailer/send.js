// Sends one message with nodemailer, as a Node application would. The job
// (JSON, argv[2]) is written by cmd/postern/clients_e2e_test.go; nodemailer
// is the version package-lock.json pins (`make deps` runs npm ci here).
'use strict';
const fs = require('fs');
const nodemailer = require('nodemailer');

const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
if (job.version) {
  console.log(`nodemailer ${require('nodemailer/package.json').version}, Node ${process.version}`);
  process.exit(0);
}
const transport = nodemailer.createTransport({
  host: job.host,
  port: job.port,
  secure: job.mode === 'tls',
  requireTLS: job.mode === 'starttls',
  tls: { ca: fs.readFileSync(job.ca) },
  authMethod: job.mech,
  auth: { user: job.user, pass: job.pass },
  connectionTimeout: 60000,
  greetingTimeout: 60000,
  socketTimeout: 60000,
});
transport.sendMail({
  from: job.from,
  to: job.to,
  subject: job.subject,
  text: job.body,
  attachments: job.attachment ? [{ filename: 'attachment.bin', path: job.attachment }] : [],
}).then(
  () => process.exit(0),
  (err) => { console.error(`nodemailer: ${err.code}: ${err.message}`); process.exit(1); },
);
