"""The dashboard's Streamlit script; ``algostack dashboard`` runs ``streamlit run`` on it."""

from algostack.services.dashboard.views import main

main()
