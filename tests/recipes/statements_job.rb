# A Rails/Sidekiq-style job that mails every customer their monthly statement and reports the run
# to Heartfly as JSON heartbeats: a start, a progress heartbeat every 50 customers, then a success
# with the number sent, or a failure with the error. The run id is the Sidekiq job id (jid), which
# stays the same across Sidekiq's retries. Plain Ruby with Net::HTTP so it runs anywhere; in the
# app the class includes Sidekiq::Job (which sets jid) and the key comes from credentials.
#
# From the environment: HEARTFLY_URL, STATEMENTS_KEY (the check's key), JID, and for the work
# itself CUSTOMERS_FILE (lines "email,balance") and OUTBOX_DIR (one mail file per statement).
require "json"
require "net/http"
require "securerandom"
require "uri"

module Heartfly
  # POST one JSON heartbeat; true once Heartfly recorded it. Never raises into the job.
  def self.heartbeat(payload)
    uri = URI("#{ENV.fetch("HEARTFLY_URL")}/api/v1/heartbeat/#{ENV.fetch("STATEMENTS_KEY")}")
    response = Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == "https",
                               open_timeout: 5, read_timeout: 5) do |http|
      http.post(uri.request_uri, JSON.generate(payload), "Content-Type" => "application/json")
    end
    warn "heartbeat not recorded: #{response.code} #{response.body}" unless response.is_a?(Net::HTTPOK)
    response.is_a?(Net::HTTPOK)
  rescue StandardError => e
    warn "heartbeat not recorded: #{e.class}: #{e.message}"
    false
  end
end

class MonthlyStatementsJob
  # include Sidekiq::Job
  PROGRESS_EVERY = 50

  attr_reader :jid

  def initialize(jid = SecureRandom.hex(12))
    @jid = jid
  end

  def perform(customers_file, outbox_dir)
    Heartfly.heartbeat(status: "start", run_id: jid)
    sent = 0
    File.foreach(customers_file, chomp: true) do |line|
      next if line.strip.empty?

      email, balance = line.split(",", 2)
      File.write(File.join(outbox_dir, "#{email}.txt"), "Your balance on the 1st: #{balance}\n")
      sent += 1
      Heartfly.heartbeat(status: "progress", run_id: jid, metrics: { sent: sent }) if (sent % PROGRESS_EVERY).zero?
    end
    Heartfly.heartbeat(status: "success", run_id: jid, metrics: { sent: sent }, message: "sent #{sent} statements")
  rescue StandardError => e
    Heartfly.heartbeat(status: "fail", run_id: jid, message: "#{e.class}: #{e.message}")
    raise # Sidekiq records the error and retries the job, with the same jid
  end
end

if $PROGRAM_NAME == __FILE__
  MonthlyStatementsJob.new(ENV.fetch("JID", SecureRandom.hex(12)))
                      .perform(ENV.fetch("CUSTOMERS_FILE"), ENV.fetch("OUTBOX_DIR"))
end
