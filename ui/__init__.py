"""The Streamlit live view of harclip (`streamlit run ui/app.py`, or `python -m ui`): live
streams, predict, webcam, search and events, labels and rules, performance. It talks to the API
only through `harclip.client`."""
