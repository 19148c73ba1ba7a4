# A Rails/Sidekiq-style job that reports each run to Heartfly: start, perform, then success or
# failure. Plain Ruby with Net::HTTP so it runs anywhere; in the app the class includes
# Sidekiq::Job and the keys come from credentials.
#
# From the environment: HEARTFLY_URL, REMINDERS_START_KEY (the check's start_key),
# REMINDERS_KEY (its key), REMINDERS_FAIL_KEY (its fail_key), and for the work itself
# INVOICES_FILE (lines "email,amount_due") and OUTBOX_DIR (one mail file per reminder).
require "json"
require "net/http"
require "uri"

module Heartfly
  # POST a JSON heartbeat; returns true once Heartfly recorded it. Never raises into the job.
  def self.ping(key, message = nil)
    uri = URI("#{ENV.fetch("HEARTFLY_URL")}/api/v1/heartbeat/#{key}")
    body = message ? JSON.generate({ message: message }) : ""
    response = Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == "https",
                               open_timeout: 5, read_timeout: 5) do |http|
      http.post(uri.request_uri, body, "Content-Type" => "application/json")
    end
    response.is_a?(Net::HTTPOK)
  rescue StandardError => e
    warn "heartbeat not recorded: #{e.class}: #{e.message}"
    false
  end
end

class InvoiceRemindersJob
  # include Sidekiq::Job

  def perform(invoices_file, outbox_dir)
    Heartfly.ping(ENV.fetch("REMINDERS_START_KEY"))
    sent = send_reminders(invoices_file, outbox_dir)
    Heartfly.ping(ENV.fetch("REMINDERS_KEY"), "sent #{sent} reminders")
  rescue StandardError => e
    Heartfly.ping(ENV.fetch("REMINDERS_FAIL_KEY"), "#{e.class}: #{e.message}")
    raise # Sidekiq records the error and retries the job
  end

  private

  def send_reminders(invoices_file, outbox_dir)
    File.readlines(invoices_file, chomp: true).reject(&:empty?).each_with_index.map do |line, index|
      email, amount = line.split(",", 2)
      raise ArgumentError, "line #{index + 1}: no email address in #{line.inspect}" unless email&.include?("@")

      File.write(File.join(outbox_dir, "#{email}.txt"), "Dear customer, #{amount} is due.\n")
    end.size
  end
end

InvoiceRemindersJob.new.perform(ENV.fetch("INVOICES_FILE"), ENV.fetch("OUTBOX_DIR")) if $PROGRAM_NAME == __FILE__
