"""SSH: the only code that imports ``paramiko`` (lazily, when a connection is made).

``target`` and ``hostkeys`` are pure (parsing ``[user@]host[:port]``, SHA256 fingerprints, the trust
decision); ``session`` connects with strict host key verification and runs commands, streams output and
uploads files over SFTP. Nothing here decides what to run: bootstrap, logs and exec plan that elsewhere.
"""
