# Read by `flask run` (python-dotenv). Committed: no secrets here.
FLASK_APP=hello.py
