"""E-mail both ways (3.2, 6.3.1.1 c, 6.4): requests by e-mail become incidents and replies thread
into them (IMAP), every new incident is acknowledged with its number (an outbox sent over SMTP),
and what the desk publishes goes to its subscribers.

models.py holds the records, parse.py reads a raw message (no I/O), intake.py files it,
outbox.py queues and sends, imap.py talks to the mailbox, poller.py is the job that runs them."""
